//! One way to declare the domain's named values: an enum whose every variant has the one
//! name it is stored under, sent as in JSON and parsed from, written once.

/// `named_enum! { /// doc  pub enum Mode as "recording mode" { Stream = "stream", … } }`
/// declares the enum (serde and OpenAPI names = the given names) with `ALL`, `as_str`,
/// `FromStr` and `TryFrom<String>` (an unknown name is an error that lists the known ones)
/// and `Display`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The name it is stored under and sent as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        // By hand: utoipa's derive does not see a `rename` that comes through a macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    other => Err(format!(
                        "unknown {} {other:?} (one of {})",
                        $what,
                        Self::ALL.map(|v| v.as_str()).join(", ")
                    )),
                }
            }
        }

        /// For decoders that take a column's text (`sqlx(try_from = "String")`).
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::media::AudioFormat;

    #[test]
    fn names_are_the_same_in_text_json_and_the_openapi_schema() {
        for f in AudioFormat::ALL {
            assert_eq!(f.as_str().parse(), Ok(f));
            assert_eq!(serde_json::json!(f), serde_json::json!(f.as_str()));
        }
        let schema =
            serde_json::to_value(<AudioFormat as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(
            schema["enum"],
            serde_json::json!(["mp3", "wav", "ogg", "m4a"])
        );
        let unknown = "flac".parse::<AudioFormat>().unwrap_err();
        assert!(unknown.contains("mp3, wav, ogg, m4a"), "{unknown}");
    }
}
