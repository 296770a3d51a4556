//! Opens protocol libraries and checks them (ABI version, layout, the six hooks) without
//! calling anything in them but a root-module constructor. A library speaks one of two ABIs:
//! abi_stable's (the Rust SDK), looked up first, or the C header's (`c_abi.rs`, which holds the
//! unsafe part of that lookup); both pass the same checks and give the same messages. For
//! abi_stable, its loader does the unsafe work (`dlopen`, the layout check) behind safe
//! functions.
//!
//! The checks run in an order that gives the most useful message first: is it a loadable
//! library, is it a Switchyard plugin, which plugin-api was it built against, which hooks does
//! its root module lack, and only then abi_stable's full layout comparison.

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError};
use abi_stable::sabi_types::VersionNumber;
use abi_stable::std_types::{RResult, RSlice, RStr};
use abi_stable::type_layout::TypeLayout;
use switchyard_plugin_api::abi::{
    self, ConnectionId, DisconnectReason, FfiHookError, FfiHookResult, FfiHost, FfiInitArgs,
    FfiInstance, FfiStatsSink, HOOKS, INTERFACE_VERSION, ROOT_MODULE_NAME,
};

use super::c_abi::{self, CModule};
use crate::config::LibrarySpec;

/// The oldest plugin-api minor this host loads (of its major). A host keeps loading plugins
/// built against every older 1.x: the root module only grows by appending (`ABI.md`).
pub const OLDEST_MINOR: u32 = 0;

/// An abi_stable plugin's `init`: it takes the host table of the plugin-api it was built with.
#[derive(Clone, Copy)]
pub enum RustInit {
    /// Built against 1.3 or later: today's `HostVTable`.
    Current(extern "C" fn(FfiHost, FfiInitArgs<'_>) -> RResult<FfiInstance, FfiHookError>),
    /// Built against 1.1 or 1.2: their `HostVTable` (`abi::v1_2`, before `listener`).
    V1_2(extern "C" fn(abi::v1_2::FfiHost, FfiInitArgs<'_>) -> RResult<FfiInstance, FfiHookError>),
    /// Built against 1.0: 1.0's `HostVTable` (`abi::v1_0`).
    V1_0(extern "C" fn(abi::v1_0::FfiHost, FfiInitArgs<'_>) -> RResult<FfiInstance, FfiHookError>),
}

/// An abi_stable plugin's hooks, read from its checked root module.
#[derive(Clone, Copy)]
pub struct RustHooks {
    /// `init`.
    pub init: RustInit,
    /// `broadcast`.
    pub broadcast: extern "C" fn(FfiInstance, RSlice<'_, RStr<'_>>, RStr<'_>) -> FfiHookResult,
    /// `notify`.
    pub notify:
        extern "C" fn(FfiInstance, ConnectionId, RSlice<'_, RStr<'_>>, RStr<'_>) -> FfiHookResult,
    /// `joinChannel`.
    pub join_channel: extern "C" fn(FfiInstance, RStr<'_>, ConnectionId) -> FfiHookResult,
    /// `leaveChannel`.
    pub leave_channel: extern "C" fn(FfiInstance, RStr<'_>, ConnectionId) -> FfiHookResult,
    /// `disconnect`.
    pub disconnect:
        extern "C" fn(FfiInstance, ConnectionId, DisconnectReason, RStr<'_>) -> FfiHookResult,
    /// `stats` (since 1.2; `None` for older plugins, which report no counters).
    pub stats: Option<extern "C" fn(FfiInstance, FfiStatsSink) -> FfiHookResult>,
}

/// A checked library's hooks, whichever ABI it speaks.
#[derive(Clone, Copy)]
pub enum PluginModule {
    /// Built with the Rust SDK (abi_stable's root module).
    Rust(RustHooks),
    /// Built against `switchyard_protocol.h`.
    C(CModule),
}

/// A library that passed every check.
#[derive(Clone, Copy)]
pub struct LoadedLibrary {
    /// Its hooks.
    pub module: PluginModule,
    /// The plugin's name, from its info.
    pub plugin_name: &'static str,
    /// The plugin's version, from its info.
    pub plugin_version: &'static str,
    /// The plugin-api version it was built against.
    pub interface_version: VersionNumber,
}

impl fmt::Debug for LoadedLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedLibrary")
            .field("plugin_name", &self.plugin_name)
            .field("plugin_version", &self.plugin_version)
            .field("interface_version", &self.interface_version)
            .finish()
    }
}

/// Why a library was refused. Each variant's message names the problem; the caller names the
/// protocol and the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// No file at any of the searched paths.
    NotFound { searched: Vec<PathBuf> },
    /// The file exists but the dynamic loader refused it (not a shared library, wrong
    /// architecture…).
    NotALibrary { reason: String },
    /// A shared library, but not one exporting a Switchyard root module.
    NotAPlugin { reason: String },
    /// Built against a plugin-api this host cannot load.
    IncompatibleVersion { found: String },
    /// Its root module lacks hooks (Kuzzle's names, in hook order).
    MissingHooks { missing: Vec<&'static str> },
    /// abi_stable's layout check failed (types changed without a version change).
    LayoutMismatch { summary: String, report: String },
    /// Built with `panic = "abort"`: a panic in a hook would kill the host.
    PanicAbort,
}

impl fmt::Display for LoadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadErrorKind::NotFound { searched } => {
                write!(f, "library not found; searched: ")?;
                for (index, path) in searched.iter().enumerate() {
                    if index > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{}", path.display())?;
                }
                Ok(())
            }
            LoadErrorKind::NotALibrary { reason } => {
                write!(f, "is not a Switchyard plugin: not a loadable shared library ({reason})")
            }
            LoadErrorKind::NotAPlugin { reason } => {
                write!(f, "is not a Switchyard plugin: {reason}")
            }
            LoadErrorKind::IncompatibleVersion { found } => write!(
                f,
                "was built against plugin-api {found}, but this host loads plugins built against plugin-api {}.x ({} or newer)",
                host_version().major,
                min_version()
            ),
            LoadErrorKind::MissingHooks { missing } => {
                write!(f, "is missing hooks: {}", missing.join(", "))
            }
            LoadErrorKind::LayoutMismatch { summary, .. } => {
                write!(f, "does not match plugin-api {INTERFACE_VERSION}: {summary}")
            }
            LoadErrorKind::PanicAbort => write!(
                f,
                "was built with panic = \"abort\": a panic in one of its hooks would kill the host"
            ),
        }
    }
}

impl LoadErrorKind {
    /// What the operator can do about it.
    pub fn hint(&self) -> Option<String> {
        let version = host_version();
        match self {
            LoadErrorKind::NotFound { .. } => Some(
                "build it (`cargo build --release`), copy it into server.pluginDir, or set `library` to its path"
                    .to_string(),
            ),
            LoadErrorKind::NotALibrary { .. } | LoadErrorKind::NotAPlugin { .. } => Some(
                "a protocol library is a cdylib that uses switchyard-plugin-api's export_protocol!"
                    .to_string(),
            ),
            LoadErrorKind::IncompatibleVersion { .. } => Some(format!(
                "rebuild it against switchyard-plugin-api {}.{}",
                version.major, version.minor
            )),
            LoadErrorKind::MissingHooks { .. } => Some(format!(
                "rebuild it against plugin-api {}.x; every protocol must export all six hooks",
                version.major
            )),
            LoadErrorKind::LayoutMismatch { .. } => Some(
                "its version is compatible but its types are not: it was built against a modified or vendored copy of switchyard-plugin-api; build it against the published crate (`switchyard check -v` prints abi_stable's full report)"
                    .to_string(),
            ),
            LoadErrorKind::PanicAbort => Some(
                "build it with panic = \"unwind\" (Cargo's default): remove `panic = \"abort\"` from its profile"
                    .to_string(),
            ),
        }
    }
}

/// A refused library.
#[derive(Debug)]
pub struct LoadError {
    /// The file (or, when not found, the first path searched).
    pub path: PathBuf,
    /// What is wrong.
    pub kind: LoadErrorKind,
}

fn host_version() -> VersionNumber {
    VersionNumber::new(abi_stable::sabi_types::VersionStrings::new(
        INTERFACE_VERSION,
    ))
    .expect("plugin-api's own version parses")
}

/// The oldest interface this host loads: same major, minor at least [`OLDEST_MINOR`].
fn min_version() -> String {
    format!("{}.{OLDEST_MINOR}", host_version().major)
}

/// True when this host loads a plugin built against plugin-api `major.minor`.
pub fn loads_version(major: u32, minor: u32) -> bool {
    // `OLDEST_MINOR` is 0 today, which clippy sees as always true; it will not stay 0 if a
    // 2.0-style break ever happens within a major.
    #[allow(clippy::absurd_extreme_comparisons)]
    let recent_enough = minor >= OLDEST_MINOR;
    major == host_version().major && recent_enough
}

/// The paths tried for a library, in order.
pub fn candidate_paths(spec: &LibrarySpec, plugin_dirs: &[PathBuf]) -> Vec<PathBuf> {
    match spec {
        LibrarySpec::Path(path) => vec![path.clone()],
        LibrarySpec::Named(name) => {
            let file = format!(
                "{}{name}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            );
            plugin_dirs.iter().map(|dir| dir.join(&file)).collect()
        }
    }
}

/// Finds, opens and checks a library. Calls nothing in it but abi_stable's root-module
/// constructor, which only builds the table of hooks.
pub fn load(spec: &LibrarySpec, plugin_dirs: &[PathBuf]) -> Result<LoadedLibrary, LoadError> {
    let candidates = candidate_paths(spec, plugin_dirs);
    let Some(path) = candidates.iter().find(|path| path.is_file()).cloned() else {
        return Err(LoadError {
            path: candidates.first().cloned().unwrap_or_default(),
            kind: LoadErrorKind::NotFound {
                searched: candidates,
            },
        });
    };
    load_path(&path).map_err(|kind| LoadError { path, kind })
}

/// Opens and checks the library at `path`.
pub fn load_path(path: &Path) -> Result<LoadedLibrary, LoadErrorKind> {
    let path = &dlopen_path(path);
    // Libraries are never unloaded (abi_stable leaks them on purpose: unloading Rust code
    // with thread-local destructors is unsound), so the header is `'static`.
    let header: &'static LibHeader = match lib_header_from_path(path) {
        Ok(header) => header,
        // Not an abi_stable library: maybe a C one.
        Err(LibraryError::GetSymbolError { .. }) => {
            return match c_abi::load(path)? {
                Some(module) => Ok(module),
                None => Err(LoadErrorKind::NotAPlugin {
                    reason: "it exports no Switchyard root module".to_string(),
                }),
            }
        }
        Err(error) => return Err(open_error(error)),
    };

    let consts = header.root_mod_consts();
    if consts.name() != ROOT_MODULE_NAME {
        return Err(LoadErrorKind::NotAPlugin {
            reason: format!(
                "it is an abi_stable library for \"{}\", not a protocol",
                consts.name()
            ),
        });
    }

    let found = header.version_strings();
    let interface_version = match VersionNumber::new(found) {
        Ok(version) => version,
        Err(_) => {
            return Err(LoadErrorKind::IncompatibleVersion {
                found: found.version.to_string(),
            })
        }
    };
    if !loads_version(interface_version.major, interface_version.minor) {
        return Err(LoadErrorKind::IncompatibleVersion {
            found: interface_version.to_string(),
        });
    }

    let present = header.layout().map(root_module_fields).unwrap_or_default();
    if header.layout().is_some() {
        let missing: Vec<&'static str> = HOOKS
            .iter()
            .filter(|(field, _)| !present.contains(field))
            .map(|(_, kuzzle_name)| *kuzzle_name)
            .collect();
        if !missing.is_empty() {
            return Err(LoadErrorKind::MissingHooks { missing });
        }
    }

    // abi_stable refuses a root module (or a host table) with fewer fields than the type it is
    // checked against, so a plugin is checked against the newest layout whose fields it has:
    // 1.2's (`stats`), 1.1's (`build`) or 1.0's; a 1.0 plugin also gets a 1.0 host table
    // (`RustInit::V1_0`).
    macro_rules! hooks {
        ($root:expr, $init:expr, $stats:expr) => {
            RustHooks {
                init: $init,
                broadcast: $root.broadcast(),
                notify: $root.notify(),
                join_channel: $root.join_channel(),
                leave_channel: $root.leave_channel(),
                disconnect: $root.disconnect(),
                stats: $stats,
            }
        };
    }
    // 1.3 appended a host function (`listener`) and no root-module field, so a 1.2 plugin is
    // told from a 1.3 one by its version: it is checked against `abi::v1_2` and gets 1.2's
    // host table.
    let (hooks, info, build) = if present.contains(&"stats") && interface_version.minor >= 3 {
        let root = header
            .init_root_module::<abi::ProtocolModuleRef>()
            .map_err(root_module_error)?;
        let init = RustInit::Current(root.init());
        (hooks!(root, init, root.stats()), root.info(), root.build())
    } else if present.contains(&"stats") {
        let root = header
            .init_root_module::<abi::v1_2::ProtocolModuleRef>()
            .map_err(root_module_error)?;
        let init = RustInit::V1_2(root.init());
        (hooks!(root, init, root.stats()), root.info(), root.build())
    } else if present.contains(&"build") {
        let root = header
            .init_root_module::<abi::v1_1::ProtocolModuleRef>()
            .map_err(root_module_error)?;
        let init = RustInit::V1_2(root.init());
        (hooks!(root, init, None), root.info(), root.build())
    } else {
        let root = header
            .init_root_module::<abi::v1_0::ProtocolModuleRef>()
            .map_err(root_module_error)?;
        let init = RustInit::V1_0(root.init());
        (hooks!(root, init, None), root.info(), None)
    };
    // 1.0 plugins do not say; the 1.0 SDK documented unwinding as required.
    if build.is_some_and(|build| !build.panic_unwind()) {
        return Err(LoadErrorKind::PanicAbort);
    }
    Ok(LoadedLibrary {
        module: PluginModule::Rust(hooks),
        plugin_name: info.name.as_str(),
        plugin_version: info.version.as_str(),
        interface_version,
    })
}

/// The path handed to `dlopen`: a bare file name (`libfoo.so`) is made `./libfoo.so`, since
/// `dlopen` searches the system's library folders for a name without a slash, never the
/// current folder.
pub fn dlopen_path(path: &Path) -> PathBuf {
    if path.components().count() == 1 && path.is_relative() {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

fn root_module_error(error: LibraryError) -> LoadErrorKind {
    match error {
        LibraryError::AbiInstability(report) => {
            let report = report.to_string();
            let summary =
                layout_summary(&report).unwrap_or_else(|| "layout check failed".to_string());
            LoadErrorKind::LayoutMismatch { summary, report }
        }
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => {
            LoadErrorKind::IncompatibleVersion {
                found: actual_version.to_string(),
            }
        }
        other => LoadErrorKind::NotAPlugin {
            reason: other.to_string(),
        },
    }
}

/// abi_stable's report in one line: the innermost mismatching type (the deepest error is the
/// cause; the ones around it follow from it), the fields that lead to it, what differs and the
/// two values. The full report is hundreds of lines (`switchyard check -v`).
///
/// Read from the report's text: abi_stable hands the loader its errors already formatted
/// (`to_formatted_error`), so they cannot be downcast.
fn layout_summary(report: &str) -> Option<String> {
    // One section per level of the check: "<n> error(s)inside:", the stack of fields from the
    // root module down (at four spaces), the two layouts, then "Error:" lines each followed by
    // "Expected:" and "Found:" blocks.
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for line in report.lines() {
        let errors = line
            .split_once(" error(s)")
            .and_then(|(count, _)| count.parse::<usize>().ok());
        match errors {
            Some(count) if count > 0 => sections.push(vec![line]),
            Some(_) => sections.push(Vec::new()),
            None => {
                if let Some(section) = sections.last_mut().filter(|section| !section.is_empty()) {
                    section.push(line);
                }
            }
        }
    }
    let stack = |section: &[&str]| -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let mut name = None;
        for line in section
            .iter()
            .take_while(|line| !line.starts_with("Layout of"))
        {
            if let Some(field) = line.strip_prefix("    field_name:") {
                name = Some(field.to_string());
            } else if let (Some(ty), Some(field)) = (line.strip_prefix("    type:"), name.take()) {
                fields.push((field, ty.to_string()));
            }
        }
        fields
    };
    let innermost = sections
        .iter()
        .filter(|section| section.iter().any(|line| line.starts_with("Error:")))
        .max_by_key(|section| stack(section).len())?;

    // The path: `Struct.field` for each named field; a pointee (`0`) or a function's
    // parameters (`host,args,`) only say which struct comes next.
    let mut path = Vec::new();
    let mut owner: Option<String> = None;
    let mut innermost_type = None;
    for (name, ty) in stack(innermost) {
        let is_wrapper = ty == "AFunctionPointer" || ty.starts_with("PrefixRef");
        if name != "0" && !name.contains(',') {
            if let Some(owner) = owner.take() {
                path.push(format!("{owner}.{name}"));
            }
        }
        if !is_wrapper {
            owner = Some(ty.clone());
            innermost_type = Some(ty);
        }
    }

    // Each kind of error once, with what was expected and what was found.
    let value = |lines: &[&str]| -> Option<String> {
        let field = lines
            .iter()
            .find_map(|line| line.trim().strip_prefix("field_name:"));
        match field {
            Some(field) => Some(format!("`{field}`")),
            None => lines
                .iter()
                .map(|line| line.trim())
                .find(|line| !line.is_empty())
                .map(str::to_string),
        }
    };
    let mut differences: Vec<String> = Vec::new();
    let mut kinds = Vec::new();
    for (at, line) in innermost.iter().enumerate() {
        let Some(kind) = line.strip_prefix("Error:") else {
            continue;
        };
        let kind = kind.trim();
        if kinds.contains(&kind) {
            continue;
        }
        kinds.push(kind);
        let rest = &innermost[at + 1..];
        let end = rest
            .iter()
            .position(|line| line.starts_with("Error:"))
            .unwrap_or(rest.len());
        let block = &rest[..end];
        let expected_at = block.iter().position(|line| line.trim() == "Expected:");
        let found_at = block.iter().position(|line| line.trim() == "Found:");
        let difference = match (expected_at, found_at) {
            (Some(expected), Some(found)) if expected < found => {
                match (
                    value(&block[expected + 1..found]),
                    value(&block[found + 1..]),
                ) {
                    (Some(expected), Some(found)) => {
                        format!("{kind} (expected {expected}, found {found})")
                    }
                    _ => kind.to_string(),
                }
            }
            _ => kind.to_string(),
        };
        differences.push(difference);
    }

    let mut summary = innermost_type.unwrap_or_else(|| "the root module".to_string());
    if !path.is_empty() {
        summary.push_str(&format!(", reached through {}", path.join(" → ")));
    }
    summary.push_str(&format!(": {}", differences.join("; ")));
    Some(summary)
}

/// The field names of the root module's prefix struct. The exported layout is that of the
/// `…Ref` pointer type; the prefix struct's layout sits a few fields down.
fn root_module_fields(layout: &'static TypeLayout) -> Vec<&'static str> {
    let mut pending = vec![layout];
    let mut visited = 0;
    while let Some(layout) = pending.pop() {
        visited += 1;
        if visited > 32 {
            break;
        }
        if layout.is_prefix_kind() {
            return layout
                .get_fields()
                .map(|fields| fields.iter().map(|field| field.name()).collect())
                .unwrap_or_default();
        }
        if let Some(fields) = layout.get_fields() {
            pending.extend(fields.iter().map(|field| field.layout()));
        }
        // `PrefixRef<P>` keeps the prefix struct's layout as a phantom field.
        pending.extend(layout.phantom_fields().iter().map(|field| field.layout()));
    }
    Vec::new()
}

fn open_error(error: LibraryError) -> LoadErrorKind {
    match error {
        LibraryError::OpenError { err, .. } => LoadErrorKind::NotALibrary {
            reason: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadErrorKind::NotAPlugin {
            reason: "it exports no Switchyard root module".to_string(),
        },
        LibraryError::InvalidAbiHeader(header) => LoadErrorKind::NotAPlugin {
            reason: format!("it was built with an incompatible abi_stable (ABI header {header:?})"),
        },
        other => LoadErrorKind::NotAPlugin {
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::layout_summary;

    /// The innermost section of abi_stable's report for a plugin built against plugin-api 1.0
    /// in a host whose `HostVTable` had grown a field (what tests/it/abi_compat.rs caught),
    /// cut to the lines the summary reads.
    const REPORT: &str = r#"0 error(s).

1 error(s)inside:
    <other>

    field_name:0
    type:ProtocolModule
    size:80 align:8
    package:'switchyard-plugin-api' version:'1.0.0'

    field_name:init
    type:AFunctionPointer
    size:8 align:8
    package:'abi_stable' version:'0.11.3'
    fn pointer(s):
        fn(host,args,: FfiHost, param_1: FfiInitArgs<'a>)->RResult
        lifetime indices:Array(ArrayLen { len: 1, array: [[ANONYMOUS, NONE], [NONE, NONE], [NONE, NONE]] })

    fn(host,args,: FfiHost, param_1: FfiInitArgs<'a>)->RResult
    lifetime indices:Array(ArrayLen { len: 1, array: [[ANONYMOUS, NONE], [NONE, NONE], [NONE, NONE]] })

    field_name:host,args,
    type:FfiHost
    size:16 align:8
    package:'switchyard-plugin-api' version:'1.0.0'

    field_name:vtable
    type:PrefixRef<'a, HostVTable>
    size:8 align:8
    package:'abi_stable' version:'0.11.3'

    field_name:0
    type:HostVTable
    size:48 align:8
    package:'switchyard-plugin-api' version:'1.0.0'

Layout of expected type:
    type:HostVTable

Layout of found type:
    type:HostVTable

Error:too many fields
Expected:
    7
Found:
    6

"#;

    #[test]
    fn the_summary_names_the_innermost_type_the_path_and_what_differs() {
        assert_eq!(
            layout_summary(REPORT).as_deref(),
            Some(
                "HostVTable, reached through ProtocolModule.init → FfiHost.vtable: too many fields (expected 7, found 6)"
            )
        );
    }

    #[test]
    fn a_report_without_errors_has_no_summary() {
        assert_eq!(layout_summary("0 error(s).\n"), None);
    }
}
