//! Keeping secret values out of job logs and status messages.
//!
//! A value is hidden wherever it appears, and so is each line of a multi-line value: job
//! output reaches the log line by line, so a key printed whole shows up as several lines,
//! none holding the whole value. A line the executor cut at its length cap goes on in the
//! next one; [`LineRedactor`] holds back the end of such a line while it could be the
//! start of a secret, so a value split by the cut is hidden too.
//!
//! Redaction guards against a secret printed by mistake, not against an action that sets
//! out to reveal one (printing it reversed, encoded or a character a line).

use crate::secret::Secret;

/// What a secret is replaced with.
const MASK: &str = "***";

/// Every text to hide, longest first: each value, and each line of it (without the
/// spaces around it). Values and their lines are at least 4 bytes (the catalogue
/// refuses shorter ones); blank lines hide nothing.
fn needles(secrets: &[Secret]) -> Vec<&str> {
    let mut needles: Vec<&str> = secrets
        .iter()
        .flat_map(|s| std::iter::once(s.value()).chain(s.value().lines().map(str::trim)))
        .filter(|n| !n.trim().is_empty())
        .collect();
    needles.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    needles.dedup();
    needles
}

/// `text` with every needle replaced, leftmost and longest first. With `hold`, a tail of
/// `text` that could be the start of a needle is not written but returned.
fn replace(text: &str, needles: &[&str], hold: bool) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let rest = &text[at..];
        if let Some(needle) = needles.iter().find(|n| rest.starts_with(**n)) {
            out.push_str(MASK);
            at += needle.len();
            continue;
        }
        if hold
            && needles
                .iter()
                .any(|n| n.len() > rest.len() && n.starts_with(rest))
        {
            return (out, at);
        }
        out.push(c);
        at += c.len_utf8();
    }
    (out, text.len())
}

/// Replaces every secret value, and every line of a multi-line one, in `text` with `***`,
/// for status messages and log lines.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let needles = needles(secrets);
    if needles.is_empty() {
        return text.to_owned();
    }
    replace(text, &needles, false).0
}

/// `text` with the password of every URL's credentials masked (`https://user:***@host`),
/// or the whole user part when it has no password (`https://***@host`, a token): for
/// messages and log lines that quote a URL, whether or not its credential is a known
/// secret.
pub fn mask_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("://") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first of these; credentials end at its last '@'.
        let end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(userinfo_end) if userinfo_end > 0 => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.split_once(':') {
                    Some((user, _)) if !user.is_empty() => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(MASK),
                }
                out.push_str(&authority[userinfo_end..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Redacts one output stream line by line, secrets split by a cut line included.
#[derive(Debug, Clone)]
pub struct LineRedactor {
    /// What can appear within one line: values and lines of values without a newline.
    needles: Vec<String>,
    /// The end of the last cut line, held back as the possible start of a secret.
    held: String,
}

impl LineRedactor {
    /// A redactor for `secrets`.
    pub fn new(secrets: &[Secret]) -> LineRedactor {
        let needles = needles(secrets)
            .into_iter()
            .filter(|n| !n.contains('\n'))
            .map(str::to_owned)
            .collect();
        LineRedactor {
            needles,
            held: String::new(),
        }
    }

    /// The next line of the stream, redacted. `continues`: it was cut, and the stream's
    /// next line goes on where it stops; its end may then be held back for that line
    /// (`None` when all of it is).
    pub fn push(&mut self, line: &str, continues: bool) -> Option<String> {
        if self.needles.is_empty() {
            return Some(line.to_owned());
        }
        let mut text = std::mem::take(&mut self.held);
        text.push_str(line);
        let needles: Vec<&str> = self.needles.iter().map(String::as_str).collect();
        let (out, end) = replace(&text, &needles, continues);
        self.held = text.split_off(end);
        (!continues || !out.is_empty()).then_some(out)
    }

    /// What is still held back when the stream ends after a cut line.
    pub fn finish(&mut self) -> Option<String> {
        (!self.held.is_empty()).then(|| std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values
            .iter()
            .map(|v| SecretSource::into_secret("S", (*v).to_owned()))
            .collect()
    }

    #[test]
    fn credentials_in_urls_are_masked() {
        for (text, masked) in [
            (
                "cannot clone https://bob:hunter2@git.example.com/repo.git: 403",
                "cannot clone https://bob:***@git.example.com/repo.git: 403",
            ),
            (
                "push to https://ghp_abc123@github.com",
                "push to https://***@github.com",
            ),
            (
                "postgres://drover:pw@db:5432/jobs?sslmode=disable and s3://k:s@b/x",
                "postgres://drover:***@db:5432/jobs?sslmode=disable and s3://k:***@b/x",
            ),
            (
                "an email a@b.c and http://host/path@x",
                "an email a@b.c and http://host/path@x",
            ),
            ("\"https://u:p@h\"", "\"https://u:***@h\""),
            ("no url here", "no url here"),
            (
                "broken ://@ and https://:pw@h",
                "broken ://@ and https://***@h",
            ),
        ] {
            assert_eq!(mask_credentials(text), masked, "{text}");
        }
    }

    #[test]
    fn values_are_hidden_longest_first() {
        let s = secrets(&["hunter22", "hunter22-admin"]);
        assert_eq!(
            redact("token hunter22 rejected, hunter22-admin too", &s),
            "token *** rejected, *** too"
        );
        assert_eq!(redact("nothing here", &s), "nothing here");
        assert_eq!(redact("anything", &[]), "anything");
    }

    #[test]
    fn each_line_of_a_multi_line_value_is_hidden_as_well_as_the_whole() {
        let key =
            "-----BEGIN KEY-----\r\n  c2VjcmV0LW9uZQ==\n\nc2VjcmV0LXR3bw==\n-----END KEY-----";
        let s = secrets(&[key]);
        assert_eq!(redact(&format!("error: {key}"), &s), "error: ***");
        for (line, hidden) in [
            ("-----BEGIN KEY-----", "***"),
            ("  c2VjcmV0LW9uZQ==", "  ***"),
            ("key part c2VjcmV0LXR3bw== printed", "key part *** printed"),
            ("", ""),
        ] {
            assert_eq!(redact(line, &s), hidden);
            assert_eq!(
                LineRedactor::new(&s).push(line, false).as_deref(),
                Some(hidden)
            );
        }
    }

    #[test]
    fn a_value_split_by_a_cut_line_is_hidden() {
        let s = secrets(&["tok-3f9a2c71e5"]);
        let mut r = LineRedactor::new(&s);
        // "aaaa tok-" may go on as the token: "tok-" waits for the next line
        assert_eq!(r.push("aaaa tok-", true).as_deref(), Some("aaaa "));
        assert_eq!(
            r.push("3f9a2c71e5 bbbb", false).as_deref(),
            Some("*** bbbb")
        );
        // a held end that turns out not to be the token is written with the next line
        assert_eq!(r.push("tok-", true), None);
        assert_eq!(r.push("3f", true), None);
        assert_eq!(r.push("ZZ", false).as_deref(), Some("tok-3fZZ"));
        // split over three cut lines
        assert_eq!(r.push("x tok", true).as_deref(), Some("x "));
        assert_eq!(r.push("-3f9a", true), None);
        assert_eq!(r.push("2c71e5", true).as_deref(), Some("***"));
        assert_eq!(r.push("", false).as_deref(), Some(""));
        // a stream that ends after a cut line gives back what was held
        assert_eq!(r.push("end tok-3", true).as_deref(), Some("end "));
        assert_eq!(r.finish().as_deref(), Some("tok-3"));
        assert_eq!(r.finish(), None);
    }

    #[test]
    fn without_secrets_lines_pass_as_they_are() {
        let mut r = LineRedactor::new(&[]);
        assert_eq!(r.push("cut", true).as_deref(), Some("cut"));
        assert_eq!(r.push("", false).as_deref(), Some(""));
        assert_eq!(r.finish(), None);
    }
}
