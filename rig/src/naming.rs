//! Names and tags of everything pathrig creates.
//!
//! Safety rests on this module: cleanup only ever touches objects whose dm name starts with
//! [`NAME_PREFIX`] *and* whose dm uuid starts with [`UUID_PREFIX`], loop devices whose backing file
//! lives in a directory named with [`NAME_PREFIX`], and directories with that prefix.

/// Prefix of every dm device name, backing file and work directory pathrig creates.
pub const NAME_PREFIX: &str = "pathrig-";
/// Prefix of every dm uuid pathrig sets.
pub const UUID_PREFIX: &str = "PATHRIG-";

/// dm name of a scenario's multipath map.
pub fn map_name(map: &str) -> String {
    format!("{NAME_PREFIX}{map}")
}

/// dm name of the leg device `leg` of map `map`.
pub fn leg_name(map: &str, leg: &str) -> String {
    format!("{NAME_PREFIX}{map}-leg-{leg}")
}

/// dm uuid for a device named `dm_name` (already prefixed with `pathrig-`).
pub fn uuid_for(dm_name: &str) -> String {
    let bare = dm_name.strip_prefix(NAME_PREFIX).unwrap_or(dm_name);
    format!("{UUID_PREFIX}{bare}")
}

/// Whether a dm device is one of ours: both its name and its uuid carry our prefixes.
pub fn is_ours(dm_name: &str, uuid: Option<&str>) -> bool {
    dm_name.starts_with(NAME_PREFIX) && uuid.is_some_and(|u| u.starts_with(UUID_PREFIX))
}

/// Whether a path (a loop device's backing file) is inside a pathrig work directory.
pub fn is_our_file(path: &str) -> bool {
    std::path::Path::new(path)
        .ancestors()
        .filter_map(|p| p.file_name())
        .any(|name| name.to_string_lossy().starts_with(NAME_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uuids_carry_the_prefixes() {
        assert_eq!(map_name("mpatha"), "pathrig-mpatha");
        assert_eq!(leg_name("mpatha", "a"), "pathrig-mpatha-leg-a");
        assert_eq!(uuid_for("pathrig-mpatha-leg-a"), "PATHRIG-mpatha-leg-a");
    }

    #[test]
    fn only_name_and_uuid_together_make_a_device_ours() {
        assert!(is_ours("pathrig-x", Some("PATHRIG-x")));
        assert!(!is_ours("pathrig-x", None));
        assert!(!is_ours("pathrig-x", Some("LVM-abc")));
        assert!(!is_ours("vg-lv", Some("PATHRIG-x")));
    }

    #[test]
    fn backing_files_are_ours_only_inside_a_prefixed_directory() {
        assert!(is_our_file("/tmp/pathrig-run1/mpatha.img"));
        assert!(!is_our_file("/var/lib/images/disk.img"));
        assert!(!is_our_file("/tmp/pathrigx/disk.img"));
    }
}
