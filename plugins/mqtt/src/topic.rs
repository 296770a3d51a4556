//! Topic names and filters (MQTT 3.1.1, 4.7): validation and wildcard matching.

/// Checks a topic name (what PUBLISH names): not empty, no wildcard. UTF-8 and U+0000 are
/// checked by the codec.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty topic name");
    }
    if name.contains(['+', '#']) {
        return Err("wildcard in a topic name");
    }
    Ok(())
}

/// Checks a topic filter: not empty; `+` and `#` occupy a whole level; `#` is the last level.
pub fn check_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("empty topic filter");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "#" if levels.peek().is_some() => return Err("'#' is not the last level"),
            "#" | "+" => {}
            _ if level.contains(['+', '#']) => return Err("wildcard inside a level"),
            _ => {}
        }
    }
    Ok(())
}

/// True when `filter` contains `+` or `#` (it is then matched level by level).
pub fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Does `filter` (valid) match topic `name` (valid)? Wildcards in the first level do not match
/// names starting with `$` (4.7.2).
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut names = name.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if names.next().is_none() {
                    return false;
                }
            }
            _ => {
                if names.next() != Some(level) {
                    return false;
                }
            }
        }
    }
    names.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated() {
        let cases = [
            ("a/b", Ok(())),
            ("#", Ok(())),
            ("+", Ok(())),
            ("a/+/c", Ok(())),
            ("a/#", Ok(())),
            ("+/+/#", Ok(())),
            ("/", Ok(())),
            ("", Err("empty topic filter")),
            ("a/#/c", Err("'#' is not the last level")),
            ("a#", Err("wildcard inside a level")),
            ("a/b+", Err("wildcard inside a level")),
            ("sport/tennis#", Err("wildcard inside a level")),
        ];
        for (filter, expected) in cases {
            assert_eq!(check_filter(filter), expected, "{filter}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(check_name("a/b"), Ok(()));
        assert_eq!(check_name("/"), Ok(()));
        assert_eq!(check_name(""), Err("empty topic name"));
        assert_eq!(check_name("a/+"), Err("wildcard in a topic name"));
        assert_eq!(check_name("#"), Err("wildcard in a topic name"));
    }

    #[test]
    fn wildcards_match_as_the_specification_says() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("#", "anything/at/all", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("#", "$SYS/uptime", false),
            ("+/uptime", "$SYS/uptime", false),
            ("$SYS/#", "$SYS/uptime", true),
            ("$SYS/+", "$SYS/uptime", true),
        ];
        for (filter, name, expected) in cases {
            assert_eq!(matches(filter, name), expected, "{filter} vs {name}");
        }
    }
}
