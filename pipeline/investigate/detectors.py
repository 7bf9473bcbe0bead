"""Attack signatures as data: name, description, SQL predicate (and a rate rule where one is needed).

Each predicate is a DuckDB boolean expression over one ``pageviews`` row extended with:

* ``raw`` – ``lower(path || '?' || query)``, as stored;
* ``req`` – the same URL-decoded twice (``%252e`` → ``%2e`` → ``.``), so encodings cannot hide a pattern;
* ``ua`` / ``ref`` – lower-cased user agent / referrer ('' when absent).

Stored values are already privacy-scrubbed (addresses masked, secrets REDACTED); signatures do not
depend on what was removed. ``covers`` names the third-party sample logs
(tests/data/third_party/logs) each signature is tested against in tests/investigate/test_investigate.py; a
clean sample must produce no hit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RateRule:
    """Flag rows only where one client network sends at least ``min_count`` of them within ``minutes``."""

    minutes: int
    min_count: int


@dataclass(frozen=True)
class Detector:
    name: str
    description: str
    predicate: str
    covers: tuple[str, ...] = ()
    rate: RateRule | None = None


# RE2 syntax (DuckDB regexp_matches). \x27 is a single quote: it keeps the SQL string literals simple.
_SQLI = (
    r"union[\s+/*]+(all[\s+/*]+)?select|information_schema|selectchar\(|"
    r"\b(sleep|benchmark|pg_sleep|load_file|extractvalue|updatexml|substr|substring|ascii|char|chr|"
    r"hex|unhex|md5|upper|distinct|concat|group_concat)\s*\(|,null(,|--|#|$)|"
    r"[\x27\x22][\s+]*(or|and)[\s+]+[\x27\x22\d]|\b(or|and)[\s+]+\d+[\s+]*=[\s+]*\d+|"
    r"waitfor[\s+]+delay|xp_cmdshell|;[\s+]*(drop|insert|update|delete)[\s+]"
)
_XSS = (
    r"<[\s/]*(script|img|svg|iframe|body|input|table|object|embed|style|meta|frameset|frame|div|a|br|"
    r"p|link|details|marquee|video|audio|form|base|math)\b|javascript:|vbscript:|"
    r"\bon(error|load|mouseover|focus|click|begin|toggle)[\s+]*=|\b(alert|prompt|confirm)[\s+]*(\(|`)|"
    r"document\.(cookie|location|domain)|string\.fromcharcode"
)
_TRAVERSAL = (
    r"\.\.[/\\;]|/\.\.$|/etc/(passwd|shadow|group|hosts|issue)|\bc:[/\\]|win\.ini|boot\.ini|/proc/self/"
)
_TRAVERSAL_RAW = r"%2e%2e|\.%2e|%2e\.|%252e|%c0%ae|%u002e"
_JNDI = r"\$\{[\s]*(jndi|\$\{|(lower|upper|env|sys|date|main|base64|::-)[:}])"
_WEBSHELL = (
    r"(^|/)(c99|c100|r57|wso|b374k|alfa|shell|cmd|webshell|indoxploit|priv8|uploader|wp-shell|"
    r"eval-stdin)\.(php\d?|asp|aspx|jsp|cgi)\b|[?&](cmd|exec|command|execute|shell_exec|passthru)=|"
    r"call_user_func_array|invokefunction|<\?php|\b(system|passthru|shell_exec|popen|proc_open|eval|"
    r"base64_decode)\(|;[\s+]*(touch|wget|curl|whoami|uname|nc|bash|sh|cat)[\s+]|"
    r"=https?://[^&]*\?+(&|$)"
)
_SCANNERS = (
    r"nikto|sqlmap|nmap|masscan|zgrab|nuclei|wpscan|dirbuster|gobuster|feroxbuster|ffuf|wfuzz|"
    r"acunetix|netsparker|nessus|openvas|w3af|whatweb|fimap|havij|jaeles|zmeu|morfeus|arachni|"
    r"skipfish|commix|xsstrike|joomscan|droopescan|l9explore|leakix"
)
_LOGIN = (
    r"(wp-login\.php|xmlrpc\.php|/wp-admin/?|/administrator(/index\.php)?|/j_security_check|"
    r"/(user/|admin/|account/|auth/)?(login|signin|sign-in|logon)(_form|\.php|\.aspx?|\.jsp|\.html)?/?)$"
)
_SECRETS = (
    r"(^|/)\.(env|git|svn|hg|htaccess|htpasswd|bash_history|bashrc|ssh|aws|docker|npmrc|ds_store|"
    r"idea|vscode|config|cache|cvs|cvsignore|forward)(\b|/|$)|/wp-config\.php\.(bak|old|save|orig|txt|swp)|"
    r"(^|/)(id_rsa|id_dsa|credentials)(\.|$)|\.(sql|bak|old|swp|orig|dump)(\.gz)?$|"
    r"/(backups?|dump|db_backup)(/|$)|(^|/)(backup|dump|db|database|site|www|htdocs|public_html)\."
    r"(zip|tar|tar\.gz|tgz|gz|rar|7z|sql)$"
)
_ARCHIVES = r"\.(sql|zip|tar|tgz|gz|bz2|xz|7z|rar|bak|dump|db|sqlite)$|/backups?(/|$|[._-])"
_LEAKS = r"(^|/)\.env$|/\.git/|\.bak$|\.sql(\.gz)?$"

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "sqli",
        "SQL injection: UNION SELECT, information_schema, time/blind functions (sleep, benchmark), "
        "tautologies ('1'='1), stacked statements",
        f"regexp_matches(req, '{_SQLI}')",
        ("crowdsec-hub-tests/nginx-http-sqli-probing",),
    ),
    Detector(
        "xss",
        "Cross-site scripting: HTML tags (<script, <img, ...), javascript: URLs, on*= handlers, alert()",
        f"regexp_matches(req, '{_XSS}')",
        ("crowdsec-hub-tests/nginx-http-xss-probing",),
    ),
    Detector(
        "path_traversal",
        "Path traversal: ../ in any encoding (%2e%2e, %252e, ..;), /etc/passwd, c:/, win.ini",
        f"(regexp_matches(req, '{_TRAVERSAL}') OR regexp_matches(raw, '{_TRAVERSAL_RAW}'))",
        (
            "crowdsec-hub-tests/nginx-http-path-traversal",
            "crowdsec-hub-tests/apache-cve-2021-41773",
            "crowdsec-hub-tests/f5-big-ip-cve-2020-5902",
            "crowdsec-hub-tests/CVE-2024-38475",
        ),
    ),
    Detector(
        "log4shell",
        "Log4Shell (CVE-2021-44228): ${jndi: and its obfuscations (${lower:...}, ${::-j}) in the URL, "
        "user agent or referrer",
        f"regexp_matches(req || ' ' || ua || ' ' || ref, '{_JNDI}')",
        ("crowdsec-hub-tests/apache_log4j2_cve-2021-44228",),
    ),
    Detector(
        "webshell",
        "Web shells and remote code execution: known shell names (c99.php, wso.php, ...), cmd=/exec=/"
        "command= parameters, PHP code, shell commands after ';', remote file inclusion (=http://...?)",
        f"regexp_matches(req, '{_WEBSHELL}')",
        (
            "crowdsec-hub-tests/apache-http-probing",
            "crowdsec-hub-tests/thinkphp-cve-2018-20062",
            "crowdsec-hub-tests/CVE-2022-46169",
            "crowdsec-hub-tests/f5-big-ip-cve-2020-5902",
        ),
    ),
    Detector(
        "scanner_ua",
        "Vulnerability scanners by user agent: Nikto, sqlmap, Nmap, masscan, ZGrab, Nuclei, WPScan, "
        "gobuster, ffuf, ...",
        f"regexp_matches(ua, '{_SCANNERS}')",
        (
            "crowdsec-hub-tests/apache2-logs",
            "crowdsec-hub-tests/ipv6-postoverflow",
            "crowdsec-hub-tests/traefik_clf",
        ),
    ),
    Detector(
        "login_bruteforce",
        "Login brute force: at least 8 POSTs to login endpoints (wp-login.php, xmlrpc.php, /login, "
        "/login_form, ...) from one client network within 60 minutes",
        f"method = 'POST' AND regexp_matches(lower(path), '{_LOGIN}')",
        ("crowdsec-hub-tests/http-bf-wordpress-bf", "basjes-hackers/hackers-access"),
        RateRule(minutes=60, min_count=8),
    ),
    Detector(
        "sensitive_probe",
        "Probing for secrets and backups (any status): .env, .git/, .htpasswd, .bash_history, "
        "wp-config.php.bak, *.sql, /backup/, backup.zip",
        f"regexp_matches(regexp_replace(req, '\\?.*', ''), '{_SECRETS}')",
        ("crowdsec-hub-tests/nginx-http-sensitive-files",),
    ),
    Detector(
        "sensitive_download",
        "Successful download of a sensitive file: status 200 and ≥ 1 MB for dumps, archives and "
        "/backup; any size for .env, .git/, *.bak, *.sql",
        f"status = 200 AND ((bytes >= 1000000 AND regexp_matches(lower(path), '{_ARCHIVES}')) "
        f"OR (bytes > 0 AND regexp_matches(lower(path), '{_LEAKS}')))",
    ),
)

BY_NAME = {d.name: d for d in DETECTORS}


def decoded_columns() -> str:
    """The extra columns the predicates use (see the module doc); decoding only when there is a '%'."""
    raw = "lower(coalesce(path, '') || coalesce('?' || query, ''))"
    return (
        f"{raw} AS raw, "
        f"CASE WHEN contains({raw}, '%') THEN lower(url_decode(url_decode({raw}))) ELSE {raw} END AS req, "
        "lower(coalesce(user_agent, '')) AS ua, lower(coalesce(referrer, '')) AS ref"
    )
