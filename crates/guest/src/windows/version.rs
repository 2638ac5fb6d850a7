//! The Windows version from the SOFTWARE hive's
//! `Microsoft\Windows NT\CurrentVersion`, mapped to an OS id by a table.

use super::reg;
use regf::Hive;

/// Version facts read from SOFTWARE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// `ProductName`.
    pub product_name: String,
    /// NT major version.
    pub major: u32,
    /// NT minor version.
    pub minor: u32,
    /// `CurrentBuildNumber` (or `CurrentBuild`).
    pub build: u32,
    /// `InstallationType`.
    pub installation_type: Option<String>,
    /// `EditionID`.
    pub edition_id: Option<String>,
}

/// Server or client, as the table distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Client,
    Server,
    Any,
}

/// One row: NT version, kind, build range (inclusive) → OS id.
struct Row {
    major: u32,
    minor: u32,
    kind: Kind,
    builds: (u32, u32),
    id: &'static str,
}

const fn row(major: u32, minor: u32, kind: Kind, builds: (u32, u32), id: &'static str) -> Row {
    Row {
        major,
        minor,
        kind,
        builds,
        id,
    }
}

const ANY: (u32, u32) = (0, u32::MAX);

/// The OS id table, first match wins. Windows 11 keeps "Windows 10" in
/// its ProductName: its build (22000+) tells it; servers of NT 10.0 are
/// told apart by build (2016 = 14393, 2019 = 17763, 2022 = 20348,
/// 2025 = 26100; semi-annual releases between them map to the older LTSC
/// id).
const TABLE: &[Row] = &[
    row(5, 1, Kind::Any, ANY, "winxp"),
    row(5, 2, Kind::Client, ANY, "winxp"), // XP x64 is NT 5.2
    row(5, 2, Kind::Server, ANY, "win2k3"),
    row(6, 0, Kind::Client, ANY, "winvista"),
    row(6, 0, Kind::Server, ANY, "win2k8"),
    row(6, 1, Kind::Client, ANY, "win7"),
    row(6, 1, Kind::Server, ANY, "win2k8r2"),
    row(6, 2, Kind::Client, ANY, "win8"),
    row(6, 2, Kind::Server, ANY, "win2k12"),
    row(6, 3, Kind::Client, ANY, "win8.1"),
    row(6, 3, Kind::Server, ANY, "win2k12r2"),
    row(10, 0, Kind::Client, (0, 21999), "win10"),
    row(10, 0, Kind::Client, (22000, u32::MAX), "win11"),
    row(10, 0, Kind::Server, (0, 17762), "win2k16"),
    row(10, 0, Kind::Server, (17763, 20347), "win2k19"),
    row(10, 0, Kind::Server, (20348, 26099), "win2k22"),
    row(10, 0, Kind::Server, (26100, u32::MAX), "win2k25"),
];

impl Version {
    /// Whether this is a server edition: `InstallationType` says so
    /// (Vista+), else the ProductName does (XP/2003 have no
    /// InstallationType).
    pub fn is_server(&self) -> bool {
        match &self.installation_type {
            Some(t) if !t.is_empty() => t.to_ascii_lowercase().contains("server"),
            _ => self.product_name.to_ascii_lowercase().contains("server"),
        }
    }

    /// The OS id, `None` for a version the table does not know.
    pub fn os_id(&self) -> Option<&'static str> {
        let server = self.is_server();
        TABLE
            .iter()
            .find(|r| {
                r.major == self.major
                    && r.minor == self.minor
                    && match r.kind {
                        Kind::Any => true,
                        Kind::Server => server,
                        Kind::Client => !server,
                    }
                    && (r.builds.0..=r.builds.1).contains(&self.build)
            })
            .map(|r| r.id)
    }
}

/// Read the version from a SOFTWARE hive; `None` when it has no
/// `Microsoft\Windows NT\CurrentVersion` with a usable version.
pub fn read(software: &Hive) -> Option<Version> {
    let k = reg::key(software, "Microsoft\\Windows NT\\CurrentVersion")?;
    let (major, minor) = match (
        reg::dword(&k, "CurrentMajorVersionNumber"),
        reg::dword(&k, "CurrentMinorVersionNumber"),
    ) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            let v = reg::string(&k, "CurrentVersion")?;
            let (a, b) = v.trim().split_once('.')?;
            (a.parse().ok()?, b.parse().ok()?)
        }
    };
    let build = reg::string(&k, "CurrentBuildNumber")
        .or_else(|| reg::string(&k, "CurrentBuild"))
        .and_then(|b| b.trim().parse().ok())
        .unwrap_or(0);
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Some(Version {
        product_name: reg::string(&k, "ProductName").unwrap_or_default(),
        major,
        minor,
        build,
        installation_type: nonempty(reg::string(&k, "InstallationType")),
        edition_id: nonempty(reg::string(&k, "EditionID")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, build: u32, it: Option<&str>, pn: &str) -> Version {
        Version {
            product_name: pn.into(),
            major,
            minor,
            build,
            installation_type: it.map(Into::into),
            edition_id: None,
        }
    }

    #[test]
    fn table_maps_every_listed_version() {
        let cases = [
            (v(5, 1, 2600, None, "Microsoft Windows XP"), "winxp"),
            (v(5, 2, 3790, None, "Microsoft Windows XP"), "winxp"),
            (
                v(5, 2, 3790, None, "Microsoft Windows Server 2003"),
                "win2k3",
            ),
            (
                v(6, 0, 6002, Some("Client"), "Windows Vista (TM) Business"),
                "winvista",
            ),
            (
                v(
                    6,
                    0,
                    6002,
                    Some("Server"),
                    "Windows Server (R) 2008 Standard",
                ),
                "win2k8",
            ),
            (
                v(6, 1, 7601, Some("Client"), "Windows 7 Professional"),
                "win7",
            ),
            (
                v(
                    6,
                    1,
                    7601,
                    Some("Server"),
                    "Windows Server 2008 R2 Standard",
                ),
                "win2k8r2",
            ),
            (v(6, 2, 9200, Some("Client"), "Windows 8 Pro"), "win8"),
            (
                v(6, 2, 9200, Some("Server Core"), "Windows Server 2012"),
                "win2k12",
            ),
            (v(6, 3, 9600, Some("Client"), "Windows 8.1 Pro"), "win8.1"),
            (
                v(6, 3, 9600, Some("Server"), "Windows Server 2012 R2"),
                "win2k12r2",
            ),
            (v(10, 0, 19045, Some("Client"), "Windows 10 Pro"), "win10"),
            (v(10, 0, 22631, Some("Client"), "Windows 10 Pro"), "win11"),
            (
                v(10, 0, 14393, Some("Server"), "Windows Server 2016"),
                "win2k16",
            ),
            (
                v(10, 0, 17763, Some("Server"), "Windows Server 2019"),
                "win2k19",
            ),
            (
                v(10, 0, 20348, Some("Server Core"), "Windows Server 2022"),
                "win2k22",
            ),
            (
                v(10, 0, 26100, Some("Server"), "Windows Server 2025"),
                "win2k25",
            ),
        ];
        for (ver, id) in cases {
            assert_eq!(ver.os_id(), Some(id), "{ver:?}");
        }
        assert_eq!(v(4, 0, 1381, None, "NT").os_id(), None);
    }
}
