#!/bin/sh
# GATEHOUSE_LOGIN_OPEN for the demo: runs browser.py on the login URL and keeps what it says
# in $DEMO_LOG (`gatehouse login` starts its opener with stdout and stderr closed).
exec python3 "$(dirname "$0")/browser.py" "$1" >> "${DEMO_LOG:-/dev/null}" 2>&1
