//! Detach keys: the key sequence that ends an attached session and leaves the container
//! running (`--detach-keys`, Docker's and Podman's syntax: comma-separated keys, each a single
//! character or `ctrl-X` for X in `a`–`z`, `@`, `[`, `\`, `]`, `^` and `_`; the empty string
//! turns detaching off). The default is ctrl-p,ctrl-q.
//!
//! A client sends its sequence to the monitor as the control line `detach-keys HEX`; the
//! monitor filters the client's input with a [`Matcher`], holding back a partial match until
//! the next byte says whether it was the sequence (then nothing of it reaches the container)
//! or input (then all of it does).

/// The default sequence, as a user writes it.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// Parses a `--detach-keys` value into the bytes of the sequence.
pub fn parse(spec: &str) -> Result<Vec<u8>, String> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|key| {
            if let Some(name) = key.strip_prefix("ctrl-") {
                let mut chars = name.chars();
                return match (chars.next(), chars.next()) {
                    (Some(c @ ('a'..='z' | '@' | '[' | '\\' | ']' | '^' | '_')), None) => {
                        Ok((c.to_ascii_uppercase() as u8) & 0x1f)
                    }
                    _ => Err(format!("invalid detach keys {spec:?}: unknown key {key:?}")),
                };
            }
            match key.as_bytes() {
                [b] if b.is_ascii() && !b.is_ascii_control() => Ok(*b),
                _ => Err(format!("invalid detach keys {spec:?}: unknown key {key:?}")),
            }
        })
        .collect()
}

/// The control line that hands `keys` to the monitor.
pub fn control_line(keys: &[u8]) -> String {
    let hex: String = keys.iter().map(|b| format!("{b:02x}")).collect();
    format!("detach-keys {hex}\n")
}

/// Reads the sequence from a control line's argument (`-` or empty: none).
pub fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// Finds a detach sequence in a stream of input.
#[derive(Debug, Clone)]
pub struct Matcher {
    keys: Vec<u8>,
    /// How many bytes of `keys` the input ended with (held back from the container).
    held: usize,
}

impl Default for Matcher {
    fn default() -> Self {
        Self::new(parse(DEFAULT).expect("the default detach keys parse"))
    }
}

impl Matcher {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, held: 0 }
    }

    /// The sequence this matcher looks for.
    pub fn keys(&self) -> &[u8] {
        &self.keys
    }

    /// Splits `input` into the bytes to pass on and whether the sequence was completed (the
    /// bytes after it are dropped: the session ends there).
    pub fn filter(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len() + self.held);
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return (out, true);
                }
                continue;
            }
            // Not the sequence after all: what was held is input, and this byte may start it.
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
                if self.keys.len() == 1 {
                    self.held = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_docker_writes_them() {
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(parse("ctrl-a,x").unwrap(), [0x01, b'x']);
        assert_eq!(parse("ctrl-@,ctrl-[,ctrl-_").unwrap(), [0x00, 0x1b, 0x1f]);
        assert_eq!(parse("").unwrap(), Vec::<u8>::new());
        assert!(parse("ctrl-1").unwrap_err().contains("\"ctrl-1\""));
        assert!(parse("ab").is_err());
        assert!(parse("ctrl-p,").is_err());
    }

    #[test]
    fn the_control_line_round_trips() {
        let line = control_line(&[0x10, 0x11]);
        assert_eq!(line, "detach-keys 1011\n");
        assert_eq!(from_hex("1011"), Some(vec![0x10, 0x11]));
        assert_eq!(from_hex(""), Some(Vec::new()));
        assert_eq!(from_hex("1"), None);
    }

    #[test]
    fn the_default_ends_the_session_and_a_lone_ctrl_p_passes() {
        let mut m = Matcher::default();
        assert_eq!(m.filter(b"ab\x10\x11cd"), (b"ab".to_vec(), true));
        let mut m = Matcher::default();
        assert_eq!(m.filter(b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(m.filter(b"x"), (b"\x10x".to_vec(), false));
        let mut m = Matcher::default();
        assert_eq!(m.filter(b"\x10"), (Vec::new(), false));
        assert_eq!(m.filter(b"\x11"), (Vec::new(), true));
        let mut m = Matcher::default();
        assert_eq!(m.filter(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }

    #[test]
    fn other_keys_and_none() {
        let mut m = Matcher::new(parse("ctrl-a,d").unwrap());
        assert_eq!(m.filter(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
        assert_eq!(m.filter(b"z\x01d"), (b"z".to_vec(), true));
        let mut m = Matcher::new(parse("q").unwrap());
        assert_eq!(m.filter(b"abq"), (b"ab".to_vec(), true));
        let mut off = Matcher::new(Vec::new());
        assert_eq!(off.filter(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
