//! A YAML document as a tree whose every node knows its line, so that an error in a
//! project file names the line to fix. Duplicate keys are refused while loading
//! (YAML forbids them; most loaders keep the last one silently).

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One node and the line (1-based) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Keys are scalars' texts (a project file never needs other keys), in file order.
    Map(Vec<(Key, Node)>),
    Seq(Vec<Node>),
    /// A scalar's text; `quoted` when written in quotes or as a block, so never a
    /// number, a boolean or null.
    Scalar {
        text: String,
        quoted: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub(crate) text: String,
    pub(crate) line: usize,
}

/// Why a text is not a YAML document this loader takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadError {
    pub(crate) line: usize,
    pub(crate) message: String,
    pub(crate) fix: String,
}

impl Node {
    /// The node as a plain scalar's text, if it is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// True for `~`, `null` or an empty plain scalar.
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What kind of node this is, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a list",
            Value::Scalar { .. } if self.is_null() => "empty",
            Value::Scalar { .. } => "a single value",
        }
    }

    /// The node as JSON, resolving plain scalars as YAML 1.2's core schema does
    /// (`true`, `12`, `1.5`, `null`; anything else is a string).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(key, node)| (key.text.clone(), node.to_json()))
                    .collect(),
            ),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Scalar { text, quoted: true } => serde_json::Value::String(text.clone()),
            Value::Scalar {
                text,
                quoted: false,
            } => plain_scalar(text),
        }
    }
}

fn plain_scalar(text: &str) -> serde_json::Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return serde_json::Value::Null,
        "true" | "True" | "TRUE" => return serde_json::Value::Bool(true),
        "false" | "False" | "FALSE" => return serde_json::Value::Bool(false),
        _ => {}
    }
    if let Ok(int) = text.parse::<i64>() {
        return int.into();
    }
    let numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    if numeric && text.chars().any(|c| c.is_ascii_digit()) {
        if let Some(number) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return serde_json::Value::Number(number);
        }
    }
    serde_json::Value::String(text.to_owned())
}

/// Loads the one document of `text`. An empty text is an empty mapping.
pub(crate) fn load(text: &str) -> Result<Node, LoadError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|err| LoadError {
        line: err.marker().line(),
        message: format!("this is not valid YAML: {}", err.info()),
        fix: "check the indentation and quoting around that line".to_owned(),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Map(Vec::new()),
        line: 1,
    }))
}

/// An open collection while events arrive.
#[derive(Debug)]
enum Open {
    Map {
        line: usize,
        entries: Vec<(Key, Node)>,
        key: Option<Key>,
    },
    Seq {
        line: usize,
        items: Vec<Node>,
    },
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    error: Option<LoadError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: String, fix: &str) {
        if self.error.is_none() {
            self.error = Some(LoadError {
                line,
                message,
                fix: fix.to_owned(),
            });
        }
    }

    /// Adds a finished node to the collection that holds it.
    fn push(&mut self, node: Node) {
        let refusal =
            match self.stack.last() {
                None => {
                    self.root = Some(node);
                    return;
                }
                Some(Open::Seq { .. }) | Some(Open::Map { key: Some(_), .. }) => None,
                Some(Open::Map {
                    entries, key: None, ..
                }) => match &node.value {
                    Value::Scalar { text, .. } => entries
                        .iter()
                        .find(|(k, _)| &k.text == text)
                        .map(|(first, _)| {
                            (
                                format!(
                                "the key `{text}` appears twice in one mapping (first on line {})",
                                first.line
                            ),
                                "remove or rename one: YAML would silently keep only one of them",
                            )
                        }),
                    _ => Some((
                        "a key is a list or a mapping".to_owned(),
                        "write keys as plain names",
                    )),
                },
            };
        if let Some((message, fix)) = refusal {
            self.fail(node.line, message, fix);
        }
        match self.stack.last_mut() {
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let text = node.as_str().unwrap_or_default().to_owned();
                    *key = Some(Key {
                        text,
                        line: node.line,
                    });
                }
            },
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::MappingStart(..) => self.stack.push(Open::Map {
                line,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceStart(..) => self.stack.push(Open::Seq {
                line,
                items: Vec::new(),
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Map { line, entries, .. }) => Node {
                        value: Value::Map(entries),
                        line,
                    },
                    Some(Open::Seq { line, items }) => Node {
                        value: Value::Seq(items),
                        line,
                    },
                    None => return,
                };
                self.push(node);
            }
            Event::Scalar(text, style, ..) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push(Node {
                    value: Value::Scalar { text, quoted },
                    line,
                });
            }
            Event::Alias(_) => {
                self.fail(
                    line,
                    "anchors and aliases (`*name`) are not supported".into(),
                    "write the value out in full",
                );
                self.push(Node {
                    value: Value::Scalar {
                        text: String::new(),
                        quoted: false,
                    },
                    line,
                });
            }
            Event::DocumentStart if self.root.is_some() => {
                self.fail(
                    line,
                    "a project file holds one YAML document".into(),
                    "remove the second `---` and what follows it",
                );
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_values() {
        let doc = load("a: 1\nb:\n  - x\n  - 'y'\nc: {d: true}\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0.text, "a");
        assert_eq!(entries[1].0.line, 2);
        assert_eq!(entries[1].1.line, 3);
        assert_eq!(
            doc.to_json(),
            serde_json::json!({"a": 1, "b": ["x", "y"], "c": {"d": true}})
        );
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_1_2() {
        let doc = load("[1, -2, 1.5, 1e3, '3', ~, null, '', yes, 3.11, v1, 1.2.3]").unwrap();
        assert_eq!(
            doc.to_json(),
            serde_json::json!([
                1, -2, 1.5, 1000.0, "3", null, null, "", "yes", 3.11, "v1", "1.2.3"
            ])
        );
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let err = load("actions:\n  a: 1\n  b: 2\n  a: 3\n").unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.message.contains("`a` appears twice"), "{}", err.message);
        assert!(err.message.contains("first on line 2"), "{}", err.message);
    }

    #[test]
    fn bad_yaml_says_where() {
        let err = load("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(
            err.message.starts_with("this is not valid YAML"),
            "{}",
            err.message
        );
        assert!(err.line >= 1);
        assert_eq!(load("").unwrap().value, Value::Map(Vec::new()));
        assert!(load("a: &x 1\nb: *x\n")
            .unwrap_err()
            .message
            .contains("aliases"));
    }
}
