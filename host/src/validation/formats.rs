//! Emails, URLs and IP addresses as npm `validator`'s `isEmail`, `isURL` and `isIP` with their
//! default options (approximated: no quoted local parts, no IP-literal email domains).

/// `isFQDN` with `require_tld`, no underscores, no trailing dot.
pub fn is_fqdn(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let tld = labels[labels.len() - 1];
    let tld_ok = (tld.chars().count() >= 2 && tld.chars().all(|c| c.is_alphabetic()))
        || (tld.len() > 4
            && tld.to_ascii_lowercase().starts_with("xn")
            && tld.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !tld_ok {
        return false;
    }
    labels.iter().all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || (c as u32) >= 0xa1)
    })
}

pub fn is_email(text: &str) -> bool {
    if text.len() > 254 {
        return false;
    }
    let Some((user, domain)) = text.rsplit_once('@') else {
        return false;
    };
    if user.is_empty() || user.len() > 64 || domain.len() > 254 {
        return false;
    }
    let special = "!#$%&'*+-/=?^_`{|}~";
    is_fqdn(&domain.to_lowercase())
        && user.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || special.contains(c) || (c as u32) >= 0xa1)
        })
}

pub fn is_ip(text: &str) -> bool {
    if text.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let address = text.split_once('%').map_or(
        text,
        |(address, zone)| {
            if zone.is_empty() {
                ""
            } else {
                address
            }
        },
    );
    address.parse::<std::net::Ipv6Addr>().is_ok()
}

pub fn is_url(text: &str) -> bool {
    if text.len() >= 2083
        || text
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return false;
    }
    if text.to_ascii_lowercase().starts_with("mailto:") {
        return false;
    }
    let rest = match text.split_once("://") {
        Some((protocol, rest)) => {
            if !["http", "https", "ftp"].contains(&protocol.to_ascii_lowercase().as_str()) {
                return false;
            }
            rest
        }
        None if text.starts_with("//") => return false,
        None => text,
    };
    let rest = rest.split('#').next().unwrap_or("");
    let rest = rest.split('?').next().unwrap_or("");
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = match authority.rsplit_once('@') {
        Some((auth, host)) => {
            if auth.is_empty() || auth.split(':').count() > 2 {
                return false;
            }
            host
        }
        None => authority,
    };
    let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
        match inner.split_once(']') {
            Some((host, after)) => {
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                return after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
            }
            None => return false,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return false;
    }
    !host.is_empty()
        && (host.parse::<std::net::Ipv4Addr>().is_ok() || is_fqdn(&host.to_lowercase()))
}

fn valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.chars().all(|c| c.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p > 0 && p <= 65535)
}
