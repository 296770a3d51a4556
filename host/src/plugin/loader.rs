//! Opens protocol libraries and checks them (ABI version, layout, the six hooks) without
//! calling anything in them. abi_stable's loader does the unsafe work (`dlopen`, the layout
//! check) behind safe functions; the host's only `unsafe` is in `host_api.rs`.
//!
//! The checks run in an order that gives the most useful message first: is it a loadable
//! library, is it a Switchyard plugin, which plugin-api was it built against, which hooks does
//! its root module lack, and only then abi_stable's full layout comparison.

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError};
use abi_stable::sabi_types::VersionNumber;
use abi_stable::type_layout::TypeLayout;
use switchyard_plugin_api::abi::{ProtocolModuleRef, HOOKS, INTERFACE_VERSION, ROOT_MODULE_NAME};

use crate::config::LibrarySpec;

/// A library that passed every check.
#[derive(Clone, Copy)]
pub struct LoadedLibrary {
    /// The root module: info and hooks.
    pub module: ProtocolModuleRef,
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
            LoadErrorKind::LayoutMismatch { .. } => Some(format!(
                "rebuild it against switchyard-plugin-api {INTERFACE_VERSION}; run `switchyard check -v` for abi_stable's full report"
            )),
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

/// The oldest interface this host loads: same major, minor at least the host's (abi_stable's
/// rule: a host reading more root-module fields than the plugin has would fail its layout check).
fn min_version() -> String {
    let version = host_version();
    format!("{}.{}", version.major, version.minor)
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
    // Libraries are never unloaded (abi_stable leaks them on purpose: unloading Rust code
    // with thread-local destructors is unsound), so the header is `'static`.
    let header: &'static LibHeader = lib_header_from_path(path).map_err(open_error)?;

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
    let wanted = host_version();
    if interface_version.major != wanted.major || interface_version.minor < wanted.minor {
        return Err(LoadErrorKind::IncompatibleVersion {
            found: interface_version.to_string(),
        });
    }

    if let Some(layout) = header.layout() {
        let present = root_module_fields(layout);
        let missing: Vec<&'static str> = HOOKS
            .iter()
            .filter(|(field, _)| !present.contains(field))
            .map(|(_, kuzzle_name)| *kuzzle_name)
            .collect();
        if !missing.is_empty() {
            return Err(LoadErrorKind::MissingHooks { missing });
        }
    }

    let module = header
        .init_root_module::<ProtocolModuleRef>()
        .map_err(|error| match error {
            LibraryError::AbiInstability(report) => {
                let report = report.to_string();
                let summary = report
                    .lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty())
                    .unwrap_or("layout check failed")
                    .to_string();
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
        })?;
    let info = module.info();
    Ok(LoadedLibrary {
        module,
        plugin_name: info.name.as_str(),
        plugin_version: info.version.as_str(),
        interface_version,
    })
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
