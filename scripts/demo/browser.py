#!/usr/bin/env python3
"""The demo's stand-in for a person at a browser.

  browser.py URL
      Opens the login URL `gatehouse login` prints (GATEHOUSE_LOGIN_OPEN), signs in at
      identity's built-in provider and approves the device code.

  browser.py --app URL --ca FILE
      Clientless access, without the Gatehouse client: opens an application at the edge's
      HTTPS front (trusting the demo's CA), follows the edge's redirect to identity
      (/v1/access/authorize, then /login), signs in, comes back through
      /.gatehouse/callback and prints one line with the application's answer. The host name
      must resolve to the edge (the demo puts it in the namespace's /etc/hosts).

DEMO_EMAIL and DEMO_PASSWORD in the environment. Cookies are kept like a browser keeps them
(the edge's `__Host-gatehouse-login` and `__Host-gatehouse-session` are Secure: HTTPS only).
"""
import html, http.cookiejar, os, re, ssl, sys, urllib.error, urllib.parse, urllib.request

email, password = os.environ["DEMO_EMAIL"], os.environ["DEMO_PASSWORD"]


def main(argv):
    if len(argv) == 2:
        approve_device(argv[1])
    elif len(argv) == 5 and argv[1] == "--app" and argv[3] == "--ca":
        open_app(argv[2], argv[4])
    else:
        sys.exit(__doc__)


def approve_device(url):
    web = browser()
    page, _, at = sign_in(web, *fetch(web, url))
    code = hidden(page).get("user_code")
    if not code:
        sys.exit(f"browser: no approval page after signing in ({at})")
    _, status, _ = fetch(web, urllib.parse.urljoin(at, "/device"),
                         {"user_code": code, "action": "approve"})
    print(f"browser: signed in as {email} and approved code {code} ({status})", file=sys.stderr)


def open_app(url, ca_file):
    hops = []
    web = browser(ssl.create_default_context(cafile=ca_file), hops)
    page, status, at = fetch(web, url)
    if 'name="password"' in page:
        hops.append(f"(signs in as {email})")
        page, status, at = sign_in(web, page, status, at)
    body = re.sub(r"<title>.*?</title>", " ", page, flags=re.S)
    answer = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(body)).split())[:200]
    print(f"browser: GET {url} -> {' -> '.join(hops)} -> {status}: {answer}")
    if status != 200:
        sys.exit(1)


def browser(tls=None, hops=None):
    """An opener with a cookie jar; with `hops` it records every redirect's target."""
    handlers = [urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())]
    if tls is not None:
        handlers.append(urllib.request.HTTPSHandler(context=tls))
    if hops is not None:
        handlers.append(Recorder(hops))
    return urllib.request.build_opener(*handlers)


class Recorder(urllib.request.HTTPRedirectHandler):
    def __init__(self, hops):
        self.hops = hops

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.hops.append(short(newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(web, url, form=None):
    """GET (or POST `form`), following redirects; (page, status, final URL), also for 4xx/5xx."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data, headers={"Accept": "text/html"})
    try:
        response = web.open(request, timeout=10)
    except urllib.error.HTTPError as e:
        return e.read().decode(errors="replace"), e.code, e.geturl()
    return response.read().decode(errors="replace"), response.status, response.geturl()


def sign_in(web, page, status, at):
    """From a provider chooser or the built-in provider's form: signed in, where it leads."""
    for _ in range(3):  # a provider chooser links to the sign-in page
        if 'name="password"' in page:
            break
        link = re.search(r'href="([^"]*login[^"]*)"', page)
        if not link:
            break
        page, status, at = fetch(web, urllib.parse.urljoin(at, html.unescape(link.group(1))))
    if 'name="password"' not in page:
        sys.exit(f"browser: no sign-in form at {at} ({status})")
    action = re.search(r'<form method="post"(?: action="([^"]*)")?', page)
    target = urllib.parse.urljoin(at, html.unescape(action.group(1))) if action and action.group(1) else at
    return fetch(web, target, dict(hidden(page), username=email, password=password))


def hidden(page):
    return {n: html.unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}


def short(url):
    """scheme://host[:port]/path, without the query (it carries nonces and tokens)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


if __name__ == "__main__":
    main(sys.argv)
