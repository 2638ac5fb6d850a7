//! The Winsock 2 protocol catalog (`Services\WinSock2\Parameters\
//! Protocol_Catalog9`): one key per provider entry under `Catalog_Entries`
//! (and `Catalog_Entries64` on 64-bit Windows), named by its 1-based
//! position (`000000000001` …) and counted by `Num_Catalog_Entries` /
//! `Num_Catalog_Entries64`. Each entry's `PackedCatalogItem` (binary) is
//! the provider DLL's path (`MAX_PATH` ANSI bytes) followed by its
//! `WSAPROTOCOL_INFOW` (catalog entry id, protocol chain, protocol name).
//! VMware's vsock installs two providers here (`vsocklib.dll`, "vSockets
//! DGRAM" / "vSockets STREAM"), which stay after the vsock driver is
//! disabled.

use super::reg;
use regf::Hive;

/// The protocol catalog under a control set.
pub const PROTOCOL_CATALOG: &str = r"Services\WinSock2\Parameters\Protocol_Catalog9";
/// The catalogs (entries key, count value).
pub const CATALOGS: &[(&str, &str)] = &[
    ("Catalog_Entries", "Num_Catalog_Entries"),
    ("Catalog_Entries64", "Num_Catalog_Entries64"),
];
/// Bytes of the DLL path at the start of `PackedCatalogItem`.
const PATH_BYTES: usize = 260;
/// Offset of `dwCatalogEntryId` in `WSAPROTOCOL_INFOW`.
const ID_AT: usize = 36;
/// Offset of `ProtocolChain` (`ChainLen`, then 7 entry ids).
const CHAIN_AT: usize = 40;
/// Offset of `szProtocol` (256 UTF-16 units).
const NAME_AT: usize = 116;
/// Size of `WSAPROTOCOL_INFOW`.
const INFO_BYTES: usize = 628;
/// Most entries of a protocol chain.
const MAX_CHAIN: usize = 7;

/// One decoded `PackedCatalogItem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogItem {
    /// Provider DLL path as stored (`%windir%\system32\vsocklib.dll`).
    pub dll: String,
    /// `dwCatalogEntryId`.
    pub id: u32,
    /// The protocol chain's entry ids (`ChainLen` of them, at most 7; a
    /// base provider has one: itself).
    pub chain: Vec<u32>,
    /// `szProtocol`.
    pub protocol: String,
}

impl CatalogItem {
    /// The DLL's file name, lower-case.
    pub fn dll_file(&self) -> String {
        self.dll
            .rsplit(['\\', '/'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decode a `PackedCatalogItem`; `None` when it is too short to hold a
/// path and a `WSAPROTOCOL_INFOW`.
pub fn parse_item(bytes: &[u8]) -> Option<CatalogItem> {
    let path = bytes.get(..PATH_BYTES)?;
    let info = bytes.get(PATH_BYTES..PATH_BYTES + INFO_BYTES)?;
    let end = path.iter().position(|b| *b == 0).unwrap_or(PATH_BYTES);
    let dll = String::from_utf8_lossy(&path[..end]).into_owned();
    let id = u32_at(info, ID_AT)?;
    let len = (u32_at(info, CHAIN_AT)? as usize).min(MAX_CHAIN);
    let chain = (0..len)
        .filter_map(|i| u32_at(info, CHAIN_AT + 4 + 4 * i))
        .collect();
    let units: Vec<u16> = info[NAME_AT..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    Some(CatalogItem {
        dll,
        id,
        chain,
        protocol: String::from_utf16_lossy(&units),
    })
}

/// One entry of a catalog.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Key name (`000000000015`).
    pub key: String,
    /// Its position from the key name.
    pub index: u64,
    /// The decoded item (`None`: missing or undecodable).
    pub item: Option<CatalogItem>,
}

/// The entries of catalog `entries` (`Catalog_Entries`, …) of control set
/// `ccs`, sorted by position; keys that are not numbers are skipped.
pub fn entries(system: &Hive, ccs: &str, entries: &str) -> Vec<Entry> {
    let path = format!(r"{ccs}\{PROTOCOL_CATALOG}\{entries}");
    let Some(k) = reg::key(system, &path) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = reg::subkeys(&k)
        .into_iter()
        .filter_map(|e| {
            let key = reg::name(&e);
            let index = key.parse::<u64>().ok()?;
            let item = e
                .value("PackedCatalogItem")
                .ok()
                .flatten()
                .and_then(|v| v.raw().ok())
                .and_then(|b| parse_item(&b));
            Some(Entry { key, index, item })
        })
        .collect();
    out.sort_by_key(|e| e.index);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(dll: &str, id: u32, chain: &[u32], name: &str) -> Vec<u8> {
        let mut b = vec![0u8; PATH_BYTES + INFO_BYTES];
        b[..dll.len()].copy_from_slice(dll.as_bytes());
        let i = PATH_BYTES;
        b[i + ID_AT..i + ID_AT + 4].copy_from_slice(&id.to_le_bytes());
        b[i + CHAIN_AT..i + CHAIN_AT + 4].copy_from_slice(&(chain.len() as u32).to_le_bytes());
        for (n, c) in chain.iter().enumerate() {
            let at = i + CHAIN_AT + 4 + 4 * n;
            b[at..at + 4].copy_from_slice(&c.to_le_bytes());
        }
        for (n, u) in name.encode_utf16().enumerate() {
            let at = i + NAME_AT + 2 * n;
            b[at..at + 2].copy_from_slice(&u.to_le_bytes());
        }
        b
    }

    #[test]
    fn items_decode_and_short_ones_do_not() {
        let b = item(
            r"%windir%\system32\vsocklib.dll",
            1015,
            &[1015],
            "vSockets DGRAM",
        );
        let it = parse_item(&b).unwrap();
        assert_eq!(it.dll_file(), "vsocklib.dll");
        assert_eq!(it.id, 1015);
        assert_eq!(it.chain, [1015]);
        assert_eq!(it.protocol, "vSockets DGRAM");
        assert!(parse_item(&b[..PATH_BYTES + INFO_BYTES - 1]).is_none());
        // a chain length beyond 7 is cut, not trusted
        let mut b = item("x.dll", 1, &[], "");
        b[PATH_BYTES + CHAIN_AT..PATH_BYTES + CHAIN_AT + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_item(&b).unwrap().chain.len(), MAX_CHAIN);
    }
}
