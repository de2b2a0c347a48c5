//! Connection strings in logs: [`redact_uri`] drops the credentials of a MongoDB URI, so
//! that whatever logs or reports a URI shows where the registry is without who logs in.

/// Options of a connection string whose values are secrets too.
const SECRET_OPTIONS: [&str; 2] = ["authmechanismproperties", "tlscertificatekeyfilepassword"];

/// `uri` without its user-info (`user:password@`), and with the values of the options that
/// carry secrets (`authMechanismProperties`, `tlsCertificateKeyFilePassword`) replaced by
/// `REDACTED`. Everything else (scheme, hosts, database, other options) is kept.
///
/// The user-info is found as the driver finds it (up to the last `@` before the options),
/// and also when a password holds an unescaped `?`, which the driver would refuse but a log
/// line must still not show.
///
/// ```
/// use framedb_mongo::redact_uri;
/// assert_eq!(
///     redact_uri("mongodb://admin:s3cret@db-0:27017,db-1:27017/framedb?replicaSet=rs0"),
///     "mongodb://db-0:27017,db-1:27017/framedb?replicaSet=rs0"
/// );
/// ```
pub fn redact_uri(uri: &str) -> String {
    let (scheme, rest) = match uri.find("://") {
        Some(at) => uri.split_at(at + 3),
        None => ("", uri),
    };
    let (before_options, options) = match rest.find('?') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let mut out = String::with_capacity(uri.len());
    out.push_str(scheme);
    if let Some(at) = before_options.rfind('@') {
        out.push_str(&before_options[at + 1..]);
    } else if let Some(options) = options.filter(|options| password_with_question_mark(options)) {
        // `user:pa?ss@host/...`: everything up to that `@` is user-info.
        let at = options.find('@').unwrap_or(0);
        out.push_str(&redact_uri(&format!("{scheme}{}", &options[at + 1..]))[scheme.len()..]);
        return out;
    } else {
        out.push_str(before_options);
    }
    if let Some(options) = options {
        out.push('?');
        let pairs: Vec<String> = options.split('&').map(redact_option).collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Whether the text after the first `?` starts like the rest of a password and a host
/// (an `@` before any `=` or `&`) rather than like options.
fn password_with_question_mark(options: &str) -> bool {
    match options.find('@') {
        Some(at) => !options[..at].contains(['=', '&']),
        None => false,
    }
}

fn redact_option(pair: &str) -> String {
    match pair.split_once('=') {
        Some((key, _)) if SECRET_OPTIONS.contains(&key.to_ascii_lowercase().as_str()) => {
            format!("{key}=REDACTED")
        }
        _ => pair.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_uri;

    #[test]
    fn removes_user_info() {
        assert_eq!(
            redact_uri("mongodb://user:pass@localhost:27017"),
            "mongodb://localhost:27017"
        );
        assert_eq!(
            redact_uri("mongodb://user@localhost/framedb"),
            "mongodb://localhost/framedb"
        );
        assert_eq!(
            redact_uri("mongodb://us%40er:p%3Ass@h1,h2:27018/db?authSource=admin&tls=true"),
            "mongodb://h1,h2:27018/db?authSource=admin&tls=true"
        );
    }

    #[test]
    fn keeps_uris_without_credentials() {
        for uri in [
            "mongodb://127.0.0.1:27017",
            "mongodb://localhost/framedb?appName=me@home",
            "mongodb+srv://cluster.example.net/",
        ] {
            assert_eq!(redact_uri(uri), uri);
        }
    }

    #[test]
    fn malformed_passwords_do_not_leak() {
        for uri in [
            "mongodb://user:p@ss@localhost:27017",
            "mongodb://user:pa/ss@localhost:27017/db",
            "mongodb://user:pa?ss@localhost:27017/db?tls=true",
            "user:secret@localhost",
        ] {
            let shown = redact_uri(uri);
            assert!(
                !shown.contains("ss@") && !shown.contains("secret"),
                "{uri} -> {shown}"
            );
            assert!(shown.contains("localhost"), "{uri} -> {shown}");
        }
    }

    #[test]
    fn secret_options_are_masked() {
        assert_eq!(
            redact_uri(
                "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok"
            ),
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=REDACTED"
        );
        assert_eq!(
            redact_uri("mongodb://h/?tlsCertificateKeyFilePassword=pw"),
            "mongodb://h/?tlsCertificateKeyFilePassword=REDACTED"
        );
    }
}
