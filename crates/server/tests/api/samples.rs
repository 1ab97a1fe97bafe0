//! Small but genuine files of every type WhatsApp accepts, built in code so tests need no fixtures.

pub const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
pub const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\xFF\xD9";
pub const PDF: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
pub const TXT: &[u8] = "Relatório de atendimento\nProtocolo 20261125000001\n".as_bytes();

/// Two MPEG-1 layer III frames (128 kbit/s, 44.1 kHz).
pub fn mp3() -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        out.resize(out.len() + 417 - 4, 0x55);
    }
    out
}

/// The first page of an Ogg stream carrying Opus (a voice note).
pub fn ogg_opus() -> Vec<u8> {
    let packet = b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0";
    let mut page = b"OggS\x00\x02".to_vec();
    page.extend_from_slice(&[0; 20]);
    page.push(1);
    page.push(packet.len() as u8);
    page.extend_from_slice(packet);
    page
}

/// An MP4 file's leading `ftyp` box.
pub fn mp4() -> Vec<u8> {
    let mut out = 24u32.to_be_bytes().to_vec();
    out.extend_from_slice(b"ftypisom\0\0\x02\0isommp41");
    out.extend_from_slice(b"\0\0\0\x08free");
    out
}

/// A stored (uncompressed) ZIP with the given entries and a central directory.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let size = data.len() as u32;
        out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        directory.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0\0\0\0\0");
        directory.extend_from_slice(&size.to_le_bytes());
        directory.extend_from_slice(&size.to_le_bytes());
        directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
        directory.extend_from_slice(&[0; 12]);
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let count = entries.len() as u16;
    out.extend_from_slice(&directory);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

pub fn docx() -> Vec<u8> {
    zip(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("_rels/.rels", b"<Relationships/>"),
        ("word/document.xml", b"<w:document/>"),
    ])
}

pub fn xlsx() -> Vec<u8> {
    zip(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("_rels/.rels", b"<Relationships/>"),
        ("xl/workbook.xml", b"<workbook/>"),
    ])
}

/// A Windows executable: must never pass as a document, whatever its name.
pub const EXE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xFF\xFF\0\0\xb8\0\0\0\0\0\0\0@\0\0\0This program cannot be run in DOS mode.";
