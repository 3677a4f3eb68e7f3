#!/usr/bin/env python3
"""The demo's stand-in for a person at a browser: opens the login URL `gatehouse login` prints,
signs in at identity's built-in provider and approves the device code.

Usage: browser.py URL   (DEMO_EMAIL and DEMO_PASSWORD in the environment)
"""
import html, http.cookiejar, os, re, sys, urllib.parse, urllib.request

url = sys.argv[1]
email, password = os.environ["DEMO_EMAIL"], os.environ["DEMO_PASSWORD"]
web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

def hidden(page):
    return {n: html.unescape(v) for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}

response = web.open(url, timeout=10)
page, at = response.read().decode(), response.geturl()
for _ in range(3):  # a provider chooser links to the sign-in page
    if 'name="password"' in page:
        break
    link = re.search(r'href="([^"]*login[^"]*)"', page)
    if not link:
        break
    response = web.open(urllib.parse.urljoin(at, html.unescape(link.group(1))), timeout=10)
    page, at = response.read().decode(), response.geturl()
form = dict(hidden(page), username=email, password=password)
response = web.open(at, urllib.parse.urlencode(form).encode(), timeout=10)
page, at = response.read().decode(), response.geturl()
code = hidden(page).get("user_code")
if not code:
    sys.exit(f"browser: no approval page after signing in ({at})")
response = web.open(urllib.parse.urljoin(at, "/device"),
                    urllib.parse.urlencode({"user_code": code, "action": "approve"}).encode(), timeout=10)
print(f"browser: signed in as {email} and approved code {code} ({response.status})", file=sys.stderr)
