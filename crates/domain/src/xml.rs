//! A small, bounded XML tree on top of quick-xml, used by the OVF, .vbox
//! and libvirt parsers, plus a tiny escaping writer used by the libvirt
//! writer. Namespace prefixes are kept but lookups match local names, so
//! `ovf:id`, `vmw:key` and `key` are found alike.

use crate::error::{Error, Result};
use quick_xml::events::{BytesStart, Event};
use std::path::Path;

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 128;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 500_000;

/// One XML element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Namespace prefix (`ovf`, `rasd`...), empty if none.
    pub prefix: String,
    /// Local name.
    pub name: String,
    /// Attributes as (qualified name, unescaped value).
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Concatenated text content directly inside this element.
    pub text: String,
}

fn local(q: &str) -> &str {
    q.rsplit_once(':').map(|(_, l)| l).unwrap_or(q)
}

impl Element {
    /// Value of the attribute whose local name is `name` (case-sensitive).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| local(k) == name)
            .map(|(_, v)| v.as_str())
    }
    /// Value of the attribute with exactly this qualified name.
    pub fn attr_q(&self, qname: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == qname)
            .map(|(_, v)| v.as_str())
    }
    /// First child with local name `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    /// All children with local name `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// Trimmed text of the first child named `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
    /// Follow a `/`-separated path of local names from this element.
    pub fn at(&self, path: &str) -> Option<&Element> {
        let mut e = self;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            e = e.child(part)?;
        }
        Some(e)
    }
    /// All descendants (depth-first, document order) with local name `name`.
    pub fn descendants<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }
}

fn start_element(path: &Path, s: &BytesStart<'_>) -> Result<Element> {
    let qname = std::str::from_utf8(s.name().as_ref())
        .map_err(|_| Error::invalid(path, "element name", "element name is not UTF-8"))?
        .to_string();
    let (prefix, name) = match qname.split_once(':') {
        Some((p, l)) => (p.to_string(), l.to_string()),
        None => (String::new(), qname.clone()),
    };
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| {
            Error::invalid(
                path,
                format!("element <{qname}>"),
                format!("bad attribute: {e}"),
            )
        })?;
        let k = std::str::from_utf8(a.key.as_ref())
            .map_err(|_| {
                Error::invalid(
                    path,
                    format!("element <{qname}>"),
                    "attribute name is not UTF-8",
                )
            })?
            .to_string();
        let v = a
            .unescape_value()
            .map_err(|e| {
                Error::invalid(
                    path,
                    format!("<{qname} {k}=...>"),
                    format!("bad attribute value: {e}"),
                )
            })?
            .into_owned();
        attrs.push((k, v));
    }
    Ok(Element {
        prefix,
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Parse a whole document and return its root element. `path` is only
/// used in error messages.
pub fn parse(path: &Path, data: &[u8]) -> Result<Element> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let text = std::str::from_utf8(data).map_err(|e| {
        Error::invalid(
            path,
            format!("byte {}", e.valid_up_to()),
            "document is not UTF-8 text (expected an XML document)",
        )
    })?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| {
            Error::invalid(path, format!("byte {pos}"), format!("malformed XML: {e}"))
        })?;
        match ev {
            ev @ (Event::Start(_) | Event::Empty(_)) => {
                let (s, is_empty) = match ev {
                    Event::Empty(s) => (s, true),
                    Event::Start(s) => (s, false),
                    _ => unreachable!("matched above"),
                };
                count += 1;
                if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err(Error::refused(
                        path,
                        format!("XML has more than {MAX_ELEMENTS} elements or nests deeper than {MAX_DEPTH}"),
                    ));
                }
                if root.is_some() {
                    return Err(Error::invalid(
                        path,
                        format!("byte {pos}"),
                        "content after the root element",
                    ));
                }
                let e = start_element(path, &s)?;
                if is_empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(e),
                        None => root = Some(e),
                    }
                } else {
                    stack.push(e);
                }
            }
            Event::End(_) => {
                let e = stack.pop().ok_or_else(|| {
                    Error::invalid(path, format!("byte {pos}"), "unbalanced end tag")
                })?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => root = Some(e),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.unescape().map_err(|e| {
                        Error::invalid(
                            path,
                            format!("byte {pos}"),
                            format!("bad text or entity: {e}"),
                        )
                    })?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::DocType(_) => {
                return Err(Error::refused(
                    path,
                    "XML documents with a DOCTYPE are not accepted",
                ));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(Error::invalid(
            path,
            "end of file",
            format!(
                "document ends inside <{}>",
                stack.last().map(|e| e.name.as_str()).unwrap_or("")
            ),
        ));
    }
    root.ok_or_else(|| Error::invalid(path, "byte 0", "no root element (expected an XML document)"))
}

/// Escape text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// An indenting XML writer.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    stack: Vec<String>,
}

fn attrs_str(attrs: &[(&str, &str)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!(" {k}='{}'", escape(v)))
        .collect()
}

impl Writer {
    /// A new empty document.
    pub fn new() -> Self {
        Self::default()
    }
    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.out.push_str("  ");
        }
    }
    /// Open `<name attrs>`.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out
            .push_str(&format!("<{name}{}>\n", attrs_str(attrs)));
        self.stack.push(name.to_string());
    }
    /// Close the innermost open element.
    pub fn close(&mut self) {
        if let Some(n) = self.stack.pop() {
            self.indent();
            self.out.push_str(&format!("</{n}>\n"));
        }
    }
    /// `<name attrs/>`.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out
            .push_str(&format!("<{name}{}/>\n", attrs_str(attrs)));
    }
    /// `<name attrs>text</name>`.
    pub fn text(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.indent();
        self.out.push_str(&format!(
            "<{name}{}>{}</{name}>\n",
            attrs_str(attrs),
            escape(text)
        ));
    }
    /// Close everything and return the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}
