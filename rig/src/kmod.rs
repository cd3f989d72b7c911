//! Loading kernel modules from an extracted module tree (a guest kernel package), with their
//! dependencies from `modules.dep`, through `finit_module` — guests have no modprobe of their own.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::RigError;

/// The module tree of one kernel release: `<dir>/modules.dep` and the `.ko` files it names.
pub struct ModuleTree {
    dir: PathBuf,
    /// Module name (underscores, as the kernel spells it) → (file relative to `dir`, dependencies).
    deps: HashMap<String, (PathBuf, Vec<String>)>,
    builtin: HashSet<String>,
}

/// The kernel's spelling of a module name: `dm-mod` and `kernel/drivers/md/dm-mod.ko` → `dm_mod`.
pub fn module_name(file_or_name: &str) -> String {
    let base = file_or_name.rsplit('/').next().unwrap_or(file_or_name);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

impl ModuleTree {
    pub fn open(dir: &Path) -> Result<ModuleTree, RigError> {
        let dep_file = dir.join("modules.dep");
        let text = fs::read_to_string(&dep_file).map_err(RigError::io("read", &dep_file))?;
        let deps = parse_modules_dep(&text);
        let builtin = fs::read_to_string(dir.join("modules.builtin"))
            .map(|t| t.lines().map(module_name).collect())
            .unwrap_or_default();
        Ok(ModuleTree {
            dir: dir.to_path_buf(),
            deps,
            builtin,
        })
    }

    /// Loads `names` and everything they depend on, dependencies first. Returns the modules that
    /// were actually loaded (already loaded and built-in ones are skipped).
    pub fn load(&self, names: &[&str]) -> Result<Vec<String>, RigError> {
        self.load_inner(names, None)
    }

    /// Loads `name` (after what it depends on) with module parameters `params`
    /// (`"add_host=2 vpd_use_hostno=0"`); a module already loaded keeps the parameters it has.
    pub fn load_with_params(&self, name: &str, params: &str) -> Result<Vec<String>, RigError> {
        self.load_inner(&[name], Some((module_name(name), params)))
    }

    fn load_inner(
        &self,
        names: &[&str],
        params: Option<(String, &str)>,
    ) -> Result<Vec<String>, RigError> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in names {
            self.visit(&module_name(name), &mut seen, &mut order)?;
        }
        let mut loaded = Vec::new();
        let empty = CString::default();
        let with = match &params {
            Some((_, p)) => CString::new(*p).map_err(|_| RigError::Module {
                module: names.join(","),
                detail: "module parameters with a NUL byte".into(),
            })?,
            None => CString::default(),
        };
        for name in order {
            let (rel, _) = &self.deps[&name];
            let path = self.dir.join(rel);
            let file = fs::File::open(&path).map_err(RigError::io("open module", &path))?;
            let args = match &params {
                Some((target, _)) if *target == name => &with,
                _ => &empty,
            };
            match finit_module(&file, args, ModuleInitFlags::empty()) {
                Ok(()) => loaded.push(name),
                Err(Errno::EEXIST) => {}
                Err(errno) => {
                    return Err(RigError::Module {
                        module: name,
                        detail: format!("finit_module {}: {errno}", path.display()),
                    })
                }
            }
        }
        Ok(loaded)
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), RigError> {
        if !seen.insert(name.to_string()) || self.builtin.contains(name) {
            return Ok(());
        }
        let Some((_, deps)) = self.deps.get(name) else {
            return Err(RigError::Module {
                module: name.to_string(),
                detail: format!("not in {}/modules.dep and not built in", self.dir.display()),
            });
        };
        for dep in deps {
            self.visit(dep, seen, order)?;
        }
        order.push(name.to_string());
        Ok(())
    }
}

fn parse_modules_dep(text: &str) -> HashMap<String, (PathBuf, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (file, deps) = line.split_once(':')?;
            let deps = deps.split_whitespace().map(module_name).collect();
            Some((module_name(file), (PathBuf::from(file), deps)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernel_spelling() {
        assert_eq!(
            module_name("kernel/drivers/md/dm-round-robin.ko"),
            "dm_round_robin"
        );
        assert_eq!(module_name("dm-mod"), "dm_mod");
        assert_eq!(module_name("kernel/fs/fuse/fuse.ko.xz"), "fuse");
    }

    #[test]
    fn dependencies_come_first_and_once() {
        let dir = std::env::temp_dir().join(format!("kmod-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("modules.dep"),
            "kernel/drivers/md/dm-mod.ko:\n\
             kernel/drivers/md/dm-multipath.ko: kernel/drivers/md/dm-mod.ko\n\
             kernel/drivers/md/dm-round-robin.ko: kernel/drivers/md/dm-multipath.ko kernel/drivers/md/dm-mod.ko\n",
        )
        .unwrap();
        fs::write(dir.join("modules.builtin"), "kernel/fs/hostfs/hostfs.ko\n").unwrap();
        let tree = ModuleTree::open(&dir).unwrap();
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in ["dm-round-robin", "dm-multipath", "hostfs"] {
            tree.visit(&module_name(name), &mut seen, &mut order)
                .unwrap();
        }
        assert_eq!(order, vec!["dm_mod", "dm_multipath", "dm_round_robin"]);
        let mut seen = HashSet::new();
        assert!(tree
            .visit("nonexistent", &mut seen, &mut Vec::new())
            .is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
