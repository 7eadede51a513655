//! An action's `run:` line: an image with a tag, then its arguments, split into
//! words as a POSIX shell would split them but never given to a shell.

use std::fmt;

/// What an action runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// `run: image:tag arg …`: a container of that image with those arguments.
    Image(Command),
    /// `action: name`: an action from the executors' catalogue (a built-in such as
    /// `noop`, or an action file), given the action's `params`.
    Catalogue(String),
}

/// A parsed `run:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The line as written (after matrix values were put in).
    pub raw: String,
    /// The image reference, with its tag or digest: `python:v2`.
    pub image: String,
    /// The arguments after the image, one per word.
    pub args: Vec<String>,
}

impl Command {
    /// The image's tag (`v2`), or its digest (`sha256:…`).
    #[must_use]
    pub fn tag(&self) -> &str {
        image_tag(&self.image).unwrap_or_default()
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Run::Image(command) => f.write_str(&command.raw),
            Run::Catalogue(action) => write!(f, "action {action}"),
        }
    }
}

/// Why a `run:` line cannot run: what and how to fix it.
pub(crate) type Refusal = (String, String);

/// Parses `raw`. `latest_allowed` is false from format version 5 on.
pub(crate) fn parse_run(raw: &str, latest_allowed: bool) -> Result<Command, Refusal> {
    let words = shlex::split(raw).ok_or_else(|| {
        (
            format!("`run` has an unclosed quote or a trailing backslash: {raw}"),
            "close the quote, or escape a literal quote as \\'".to_owned(),
        )
    })?;
    let Some((image, args)) = words.split_first() else {
        return Err((
            "`run` is empty".to_owned(),
            "write an image with its tag and then its arguments, like `run: python:v2 analysis/model.py`"
                .to_owned(),
        ));
    };
    check_image(image, latest_allowed)?;
    Ok(Command {
        raw: raw.to_owned(),
        image: image.clone(),
        args: args.to_vec(),
    })
}

/// The tag (or `sha256:` digest) of an image reference; `None` without one.
fn image_tag(image: &str) -> Option<&str> {
    if let Some((_, digest)) = image.split_once('@') {
        return Some(digest);
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, tag)| tag)
}

fn check_image(image: &str, latest_allowed: bool) -> Result<(), Refusal> {
    let name = image.split(['@']).next().unwrap_or(image);
    let path = match name.rsplit_once('/') {
        Some((head, last)) => format!("{head}/{}", last.split(':').next().unwrap_or(last)),
        None => name.split(':').next().unwrap_or(name).to_owned(),
    };
    let well_formed = !path.is_empty()
        && !path.starts_with(['-', '.', '/'])
        && path.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/' | ':')
        });
    if !well_formed {
        return Err((
            format!("`run` starts with `{image}`, which is not an image name"),
            "start `run` with an image in lower case and its tag, like `python:v2` or `registry.example:5000/team/tool:1.4`"
                .to_owned(),
        ));
    }
    let Some(tag) = image_tag(image) else {
        return Err((
            format!("the image `{image}` in `run` has no tag"),
            format!("name a version, like `{image}:v1`: a tag makes a rerun run the same code"),
        ));
    };
    let tag_ok = if let Some(hex) = tag.strip_prefix("sha256:") {
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
    } else {
        !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    if !tag_ok {
        return Err((
            format!("the image `{image}` in `run` has a malformed tag `{tag}`"),
            "a tag is up to 128 of A-Z a-z 0-9 _ . - (`v1`, `1.2`, `dev`), or `@sha256:` and 64 hex digits"
                .to_owned(),
        ));
    }
    if tag == "latest" && !latest_allowed {
        return Err((
            format!("the image `{image}` in `run` uses the tag `latest`, which format version 5 refuses"),
            "name the version to run, like `:v1`: `latest` changes under a rerun, so its results cannot be reproduced"
                .to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell_without_one() {
        let command = parse_run(
            r#"python:v2 analysis/x.py "qu'ote.csv" 'a b' $HOME;rm"#,
            false,
        )
        .unwrap();
        assert_eq!(command.image, "python:v2");
        assert_eq!(
            command.args,
            ["analysis/x.py", "qu'ote.csv", "a b", "$HOME;rm"]
        );
        assert_eq!(command.tag(), "v2");
    }

    #[test]
    fn images_need_a_tag() {
        for good in [
            "python:1.2",
            "python:dev",
            "registry.example:5000/team/tool:v1",
            "ghcr.io/opensafely-core/ehrql:v1",
            &format!("busybox@sha256:{}", "a".repeat(64)),
        ] {
            assert!(parse_run(good, false).is_ok(), "{good}");
        }
        let (problem, fix) = parse_run("python analysis.py", false).unwrap_err();
        assert_eq!(problem, "the image `python` in `run` has no tag");
        assert!(fix.contains("python:v1"), "{fix}");
        assert!(parse_run("registry.example:5000/tool", false).is_err());
        assert!(parse_run("python:latest x", true).is_ok());
        assert!(parse_run("python:latest x", false)
            .unwrap_err()
            .0
            .contains("`latest`"));
        assert!(parse_run("Python:v1", false)
            .unwrap_err()
            .0
            .contains("not an image name"));
        assert!(parse_run("python:v1 'open", false)
            .unwrap_err()
            .0
            .contains("unclosed quote"));
        assert!(parse_run("   ", false).unwrap_err().0.contains("empty"));
    }
}
