//! Guest OS hints from every source (VMware `guestOS`/`vmw:osType`,
//! VirtualBox `OSType`, OVF CIM ids, libosinfo URIs, user hints such as
//! `win10`) normalised into one [`GuestOs`].

use serde::{Deserialize, Serialize};

/// OS family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    /// Microsoft Windows.
    Windows,
    /// Any Linux distribution.
    Linux,
    /// Anything else or unknown.
    Other,
}

/// Windows releases, ordered by NT kernel version (client before server
/// of the same kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WinVersion {
    /// Windows 3.x/95/98/ME (not NT).
    Win9x,
    /// Windows NT 4.0.
    Nt4,
    /// Windows 2000 (NT 5.0).
    Win2000,
    /// Windows XP (NT 5.1; XP x64 is 5.2).
    WinXp,
    /// Windows Server 2003 / 2003 R2 (NT 5.2).
    Win2003,
    /// Windows Vista (NT 6.0).
    Vista,
    /// Windows Server 2008 (NT 6.0).
    Win2008,
    /// Windows 7 (NT 6.1).
    Win7,
    /// Windows Server 2008 R2 (NT 6.1).
    Win2008R2,
    /// Windows 8 (NT 6.2).
    Win8,
    /// Windows Server 2012 (NT 6.2).
    Win2012,
    /// Windows 8.1 (NT 6.3).
    Win81,
    /// Windows Server 2012 R2 (NT 6.3).
    Win2012R2,
    /// Windows 10 (NT 10.0).
    Win10,
    /// Windows Server 2016.
    Win2016,
    /// Windows Server 2019.
    Win2019,
    /// Windows Server 2022.
    Win2022,
    /// Windows 11.
    Win11,
    /// Windows Server 2025.
    Win2025,
}

impl WinVersion {
    /// NT kernel (major, minor); Windows 9x reports (4, 90).
    pub fn nt_version(self) -> (u8, u8) {
        use WinVersion::*;
        match self {
            Win9x => (4, 90),
            Nt4 => (4, 0),
            Win2000 => (5, 0),
            WinXp => (5, 1),
            Win2003 => (5, 2),
            Vista | Win2008 => (6, 0),
            Win7 | Win2008R2 => (6, 1),
            Win8 | Win2012 => (6, 2),
            Win81 | Win2012R2 => (6, 3),
            _ => (10, 0),
        }
    }
    /// Short id (`winxp`, `win2003`, `win7`, `win10`, `win2019`...).
    pub fn id(self) -> &'static str {
        use WinVersion::*;
        match self {
            Win9x => "win9x",
            Nt4 => "winnt4",
            Win2000 => "win2000",
            WinXp => "winxp",
            Win2003 => "win2003",
            Vista => "winvista",
            Win2008 => "win2008",
            Win7 => "win7",
            Win2008R2 => "win2008r2",
            Win8 => "win8",
            Win2012 => "win2012",
            Win81 => "win81",
            Win2012R2 => "win2012r2",
            Win10 => "win10",
            Win2016 => "win2016",
            Win2019 => "win2019",
            Win2022 => "win2022",
            Win11 => "win11",
            Win2025 => "win2025",
        }
    }
    fn x64_only(self) -> bool {
        use WinVersion::*;
        matches!(
            self,
            Win2008R2 | Win2012 | Win2012R2 | Win2016 | Win2019 | Win2022 | Win2025 | Win11
        )
    }
}

/// CPU architecture of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 32-bit x86.
    X86,
    /// 64-bit x86.
    X86_64,
    /// Not stated by the source.
    Unknown,
}

/// The normalised guest OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestOs {
    /// Family.
    pub family: OsFamily,
    /// Windows release, when family is Windows and it is known.
    pub windows: Option<WinVersion>,
    /// Linux distribution id with version digits as given (`debian10`,
    /// `rhel8`, `ubuntu`, `linux`), when family is Linux.
    pub distro: Option<String>,
    /// Architecture.
    pub arch: Arch,
    /// The hint exactly as found in the source.
    pub raw: String,
}

const WIN_TABLE: &[(&str, WinVersion)] = {
    use WinVersion::*;
    &[
        ("win2022srvnext", Win2025),
        ("win2019srvnext", Win2022),
        ("win2019srv", Win2019),
        ("win95", Win9x),
        ("win98", Win9x),
        ("winme", Win9x),
        ("win31", Win9x),
        ("win9srv", Win2016),
        ("win9server", Win2016),
        ("win9", Win10),
        ("win8srv", Win2012),
        ("win8server", Win2012),
        ("win81", Win81),
        ("win8", Win8),
        ("win7srv", Win2008R2),
        ("win7server", Win2008R2),
        ("win7", Win7),
        ("win2025", Win2025),
        ("win2022", Win2022),
        ("win2019", Win2019),
        ("win2016", Win2016),
        ("win2012r2", Win2012R2),
        ("win2012", Win2012),
        ("win2008r2", Win2008R2),
        ("win2008", Win2008),
        ("win2003", Win2003),
        ("win2000", Win2000),
        ("win11", Win11),
        ("win12", Win11),
        ("win10", Win10),
        ("winvista", Vista),
        ("winlonghorn", Win2008),
        ("longhorn", Win2008),
        ("winnet", Win2003),
        ("winxp", WinXp),
        ("winnt", Nt4),
    ]
};

const LINUX_WORDS: &[&str] = &[
    "ubuntu",
    "debian",
    "rhel",
    "redhat",
    "centos",
    "fedora",
    "opensuse",
    "sles",
    "suse",
    "oraclelinux",
    "oracle",
    "almalinux",
    "rockylinux",
    "rocky",
    "amazonlinux",
    "mandriva",
    "mandrake",
    "gentoo",
    "archlinux",
    "asianux",
    "coreos",
    "photon",
    "turbolinux",
    "linux",
];

/// OVF CIM operating system type numbers (DMTF CIM_OperatingSystem).
fn cim_id(n: u32) -> Option<&'static str> {
    Some(match n {
        58 => "win2000",
        67 => "winxp",
        71 => "winxp_64",
        69 => "win2003",
        70 => "win2003_64",
        73 => "winvista",
        74 => "winvista_64",
        76 => "win2008",
        77 => "win2008_64",
        79 => "rhel",
        80 => "rhel_64",
        82 | 84 => "sles",
        83 | 85 => "sles_64",
        95 => "debian",
        96 => "debian_64",
        36 | 97 | 99 => "linux",
        98 | 100 | 101 => "linux_64",
        103 => "win2008r2_64",
        105 => "win7",
        106 => "centos",
        107 => "centos_64",
        108 => "oraclelinux",
        109 => "oraclelinux_64",
        112 => "win2012_64",
        113 => "win8",
        114 => "win8_64",
        115 => "win2012r2_64",
        116 => "win81",
        117 => "win81_64",
        _ => return None,
    })
}

impl GuestOs {
    /// An unknown OS.
    pub fn unknown() -> GuestOs {
        GuestOs {
            family: OsFamily::Other,
            windows: None,
            distro: None,
            arch: Arch::Unknown,
            raw: String::new(),
        }
    }

    /// Normalise any OS hint. Never fails: an unrecognised hint gives
    /// family `Other` with the raw string kept.
    pub fn parse(raw: &str) -> GuestOs {
        let mut g = GuestOs::unknown();
        g.raw = raw.to_string();
        let mut s = raw.trim().to_ascii_lowercase();
        if s.is_empty() {
            return g;
        }
        if let Ok(n) = s.parse::<u32>() {
            match cim_id(n) {
                Some(id) => s = id.to_string(),
                None => return g,
            }
        }
        let libosinfo = s.starts_with("http");
        for p in ["http://", "https://", "microsoft.com/", "www."] {
            if let Some(r) = s.strip_prefix(p) {
                s = r.to_string();
            }
        }
        if let Some(r) = s.strip_suffix("guest") {
            s = r.to_string();
        }
        let mut is64 = false;
        for suf in ["x86_64", "amd64", "x64", "-64", "_64", "64"] {
            if let Some(r) = s.strip_suffix(suf) {
                s = r.to_string();
                is64 = true;
                break;
            }
        }
        // VirtualBox: Windows2003_64 → windows2003; "windows 10" → windows10.
        let mut k: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        if let Some(r) = k.strip_prefix("windows") {
            k = format!("win{r}");
        } else if let Some(r) = k.strip_prefix("microsoftwindows") {
            k = format!("win{r}");
        }
        if let Some(r) = k.strip_prefix("win2k") {
            k = match r.chars().next() {
                Some(c) if c.is_ascii_digit() => {
                    let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
                    let rest = &r[digits.len()..];
                    format!("win20{:0>2}{rest}", digits)
                }
                _ => format!("win2000{r}"),
            };
        }
        if k.starts_with("win") || k.contains("longhorn") {
            if let Some((_, v)) = WIN_TABLE.iter().find(|(p, _)| k.starts_with(p)) {
                g.family = OsFamily::Windows;
                g.windows = Some(*v);
                g.arch = if is64 || v.x64_only() {
                    Arch::X86_64
                } else if libosinfo {
                    Arch::Unknown
                } else {
                    Arch::X86
                };
                return g;
            }
            if k.starts_with("win") {
                g.family = OsFamily::Windows;
                g.arch = if is64 { Arch::X86_64 } else { Arch::Unknown };
                return g;
            }
        }
        // libosinfo: debian.org/debian/12 → "debianorgdebian12"
        let k = k
            .replace("debianorg", "")
            .replace("ubuntucom", "")
            .replace("redhatcom", "")
            .replace("centosorg", "")
            .replace("fedoraprojectorg", "");
        if let Some(w) = LINUX_WORDS.iter().find(|w| k.contains(*w)) {
            g.family = OsFamily::Linux;
            let at = k.find(w).unwrap_or(0);
            let ver: String = k[at + w.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            let name = match *w {
                "redhat" => "rhel",
                "oracle" => "oraclelinux",
                "rocky" => "rockylinux",
                other => other,
            };
            g.distro = Some(format!("{name}{ver}"));
            g.arch = if is64 {
                Arch::X86_64
            } else if libosinfo {
                Arch::Unknown
            } else {
                Arch::X86
            };
            return g;
        }
        if is64 {
            g.arch = Arch::X86_64;
        }
        g
    }

    /// Family is Windows.
    pub fn is_windows(&self) -> bool {
        self.family == OsFamily::Windows
    }

    /// NT kernel version if Windows and known.
    pub fn nt_version(&self) -> Option<(u8, u8)> {
        self.windows.map(WinVersion::nt_version)
    }

    /// Windows older than Vista/2008 (NT < 6.0): needs i440fx, IDE, VGA.
    pub fn is_legacy_windows(&self) -> bool {
        self.is_windows() && self.nt_version().is_some_and(|v| v < (6, 0))
    }

    /// Windows at least `v` by kernel version (unknown version counts as
    /// modern: Windows 10 class).
    pub fn windows_at_least(&self, v: WinVersion) -> bool {
        self.is_windows() && self.nt_version().unwrap_or((10, 0)) >= v.nt_version()
    }

    /// A short id: the Windows id, the distro, or `other`.
    pub fn id(&self) -> String {
        match (self.family, self.windows, &self.distro) {
            (OsFamily::Windows, Some(v), _) => v.id().to_string(),
            (OsFamily::Windows, None, _) => "windows".into(),
            (OsFamily::Linux, _, Some(d)) => d.clone(),
            (OsFamily::Linux, _, None) => "linux".into(),
            _ => "other".into(),
        }
    }
}
