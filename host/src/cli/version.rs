//! `pagehook --version --json`: what this binary is and what it contains,
//! for an inventory or a vulnerability scanner.
//!
//! Release builds (`make dist`, `make deb`) are made with `cargo auditable`,
//! which embeds the crates the binary was built from, zlib-compressed JSON,
//! in the ELF section `.dep-v0` (the same data `cargo audit bin` and SBOM
//! scanners read). This module reads that section back from the running
//! executable and lists the crates; a build without it says so instead of
//! guessing.
//!
//! It must never read the configuration or print anything of it: a version
//! answer carries no secret, and it works without a config.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::{Value, json};

/// The section `cargo auditable` writes.
const SECTION: &str = ".dep-v0";
/// The most the section may decompress to (as cargo-auditable's readers cap it).
const MAX_JSON: u64 = 8 * 1024 * 1024;

/// Whether the arguments ask for `--version --json` (in either order, `-V`
/// for `--version`).
pub fn wanted(args: &[OsString]) -> bool {
    let rest: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    rest.len() == 2
        && rest.contains(&"--json")
        && (rest.contains(&"--version") || rest.contains(&"-V"))
}

/// The answer, as printed.
pub fn report() -> Value {
    let contracts: Vec<&str> = crate::runtime::contract::Contract::ALL
        .iter()
        .map(|c| c.version())
        .collect();
    let dependencies = match std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| embedded_dependencies(&exe))
    {
        Ok(Some(packages)) => json!({
            "embedded": true,
            "source": "cargo auditable (ELF section .dep-v0)",
            "packages": packages,
        }),
        Ok(None) => json!({
            "embedded": false,
            "note": "built without cargo auditable; release builds (make dist, make deb) carry the list of crates they were built from",
        }),
        Err(e) => json!({ "embedded": false, "error": e }),
    };
    json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "target": {
            "arch": std::env::consts::ARCH,
            "os": std::env::consts::OS,
            "env": if cfg!(target_env = "gnu") { "gnu" } else if cfg!(target_env = "musl") { "musl" } else { "" },
        },
        "debug_assertions": cfg!(debug_assertions),
        "plugin_contracts": contracts,
        "dependencies": dependencies,
    })
}

/// The crates `cargo auditable` recorded in the executable at `exe`
/// (name, version, source, kind), or `None` without the section.
fn embedded_dependencies(exe: &Path) -> Result<Option<Vec<Value>>, String> {
    let mut file = File::open(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    let Some(compressed) = elf_section(&mut file, SECTION)? else {
        return Ok(None);
    };
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(MAX_JSON)
        .read_to_string(&mut text)
        .map_err(|e| format!("{SECTION} does not decompress: {e}"))?;
    let info: Value =
        serde_json::from_str(&text).map_err(|e| format!("{SECTION} is not JSON: {e}"))?;
    let packages = info["packages"]
        .as_array()
        .ok_or_else(|| format!("{SECTION} lists no packages"))?
        .iter()
        .map(|p| {
            json!({
                "name": p["name"],
                "version": p["version"],
                "source": p["source"],
                "kind": p.get("kind").cloned().unwrap_or_else(|| "runtime".into()),
            })
        })
        .collect();
    Ok(Some(packages))
}

/// The bytes of the section called `name` of a little-endian ELF64 file,
/// `None` when it has no such section.
fn elf_section(file: &mut File, name: &str) -> Result<Option<Vec<u8>>, String> {
    let mut header = [0u8; 64];
    file.read_exact(&mut header)
        .map_err(|e| format!("not an ELF file: {e}"))?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]) as u64;
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64;
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (table, entry, count, names) = (
        u64_at(&header, 0x28),
        u16_at(&header, 0x3A),
        u16_at(&header, 0x3C),
        u16_at(&header, 0x3E),
    );
    if entry < 64 || count == 0 || names >= count {
        return Ok(None);
    }
    let mut sections = vec![0u8; (entry * count) as usize];
    file.seek(SeekFrom::Start(table))
        .and_then(|_| file.read_exact(&mut sections))
        .map_err(|e| format!("cannot read the section headers: {e}"))?;
    let section = |i: u64| &sections[(i * entry) as usize..((i + 1) * entry) as usize];
    let mut read = |offset: u64, size: u64| -> Result<Vec<u8>, String> {
        if size > 64 * 1024 * 1024 {
            return Err("a section is implausibly large".into());
        }
        let mut bytes = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| format!("cannot read a section: {e}"))?;
        Ok(bytes)
    };
    let strings = read(u64_at(section(names), 24), u64_at(section(names), 32))?;
    for i in 0..count {
        let s = section(i);
        let start = u32_at(s, 0) as usize;
        let Some(rest) = strings.get(start..) else {
            continue;
        };
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return read(u64_at(s, 24), u64_at(s, 32)).map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_version_and_json_together_ask_for_it() {
        let args = |a: &[&str]| -> Vec<OsString> {
            std::iter::once("pagehook")
                .chain(a.iter().copied())
                .map(OsString::from)
                .collect()
        };
        assert!(wanted(&args(&["--version", "--json"])));
        assert!(wanted(&args(&["--json", "-V"])));
        assert!(!wanted(&args(&["--version"])));
        assert!(!wanted(&args(&["connections", "--json"])));
    }

    #[test]
    fn a_binary_without_the_section_says_so_and_the_answer_names_the_build() {
        // The test binary is built without cargo auditable.
        let exe = std::env::current_exe().unwrap();
        assert_eq!(embedded_dependencies(&exe), Ok(None));
        let report = report();
        assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(report["dependencies"]["embedded"], false);
        assert!(
            report["plugin_contracts"]
                .as_array()
                .unwrap()
                .contains(&json!("0.1.0"))
        );
    }

    #[test]
    fn the_crates_cargo_auditable_embeds_are_read_back() {
        use std::io::Write as _;
        // An ELF file with a .dep-v0 section, as cargo auditable writes it.
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("true");
        std::fs::copy("/bin/true", &exe).unwrap();
        let info = json!({"packages": [
            {"name": "pagehook", "version": "0.1.0", "source": "local", "root": true, "dependencies": [1]},
            {"name": "wasmtime", "version": "48.0.8", "source": "crates.io"},
        ]});
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(info.to_string().as_bytes()).unwrap();
        let data = dir.path().join("dep-v0");
        std::fs::write(&data, z.finish().unwrap()).unwrap();
        let added = std::process::Command::new("objcopy")
            .arg(format!("--add-section=.dep-v0={}", data.display()))
            .arg(&exe)
            .status()
            .unwrap();
        assert!(added.success());
        let packages = embedded_dependencies(&exe).unwrap().unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[1]["name"], "wasmtime");
        assert_eq!(packages[1]["version"], "48.0.8");
        assert_eq!(packages[1]["kind"], "runtime");
        assert_eq!(
            embedded_dependencies(Path::new("/bin/true")),
            Ok(None),
            "the same file without the section"
        );
    }

    #[test]
    fn a_file_that_is_not_elf_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, vec![0u8; 128]).unwrap();
        assert!(embedded_dependencies(&path).is_err());
    }
}
