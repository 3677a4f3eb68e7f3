// A real OpenID Connect provider for Gatehouse's end-to-end tests: the npm package
// `oidc-provider` (OpenID-certified), configured with one confidential client, PKCE required,
// a `groups` claim, fixed test accounts, a tiny login form, and signing-key rotation.
//
// Usage:
//   node provider.mjs --port 0 --client-id gatehouse-identity --client-secret s3cret \
//       --redirect-uri http://127.0.0.1:8443/callback/test [--redirect-uri ...] \
//       [--auth-method client_secret_basic|client_secret_post] [--accounts accounts.json]
// Every option can also come from the environment: OIDC_PORT, OIDC_CLIENT_ID,
// OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS (space-separated), OIDC_AUTH_METHOD, OIDC_ACCOUNTS.
//
// When listening it prints one line to stdout:
//   oidc-provider ready issuer=http://127.0.0.1:<port> port=<port> kid=<signing kid>
//
// Key rotation (the provider then signs with a new RS256 key with a new `kid`; the JWKS lists
// the new key first and keeps the old ones unless retired):
//   kill -HUP <pid>                                  keeps the old keys in the JWKS
//   POST /_test/rotate-key                           same; answers {"kid":…, "kids":[…]}
//   POST /_test/rotate-key?retire=1                  drops the old keys from the JWKS
// Each rotation prints `oidc-provider rotated kid=<new kid> kids=<comma list>`.
//
// Accounts change at run time (what an IdP admin does; the next token, refreshed or not,
// carries the change):
//   POST /_test/groups?username=alice&groups=admins,sales   replaces alice's groups ("" = none)
//   POST /_test/remove-account?username=alice               deletes alice: her refresh tokens
//                                                           then answer `invalid_grant`
// Refresh tokens: the client may use the `refresh_token` grant; a code whose request had
// `scope=… offline_access` and `prompt=consent` comes with one (oidc-provider's rule).
//
// The login form (GET /interaction/<uid>) has `username` and `password` fields and posts to
// `/interaction/<uid>/login`. Consent is granted automatically (a first-party test client).
// A wrong password re-renders the form with status 401 and "invalid username or password".

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';
// The package has no `exports` map; its in-memory adapter factory is shared by every provider
// instance so that sessions, grants and codes survive a key rotation (a new instance).
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';
import { exportJWK, generateKeyPair } from 'jose';

// The scopes and the claims each one releases (OIDC Core §5.4, plus `groups`).
const CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'preferred_username'],
  groups: ['groups'],
};
// `offline_access` releases no claim: it asks for a refresh token (OIDC Core §11).
const SCOPES = [...Object.keys(CLAIMS), 'offline_access'];

// Fixed accounts: username → { password, email, name, groups }. The `sub` is `user-<username>`.
const DEFAULT_ACCOUNTS = {
  alice: {
    password: 'alice-password',
    email: 'alice@example.com',
    name: 'Alice Example',
    groups: ['engineering', 'admins'],
  },
  bob: {
    password: 'bob-password',
    email: 'bob@example.com',
    name: 'Bob Example',
    groups: ['sales'],
  },
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'auth-method': { type: 'string' },
    accounts: { type: 'string' },
  },
});

const host = args.host ?? process.env.OIDC_HOST ?? '127.0.0.1';
const port = Number(args.port ?? process.env.OIDC_PORT ?? 0);
const clientId = args['client-id'] ?? process.env.OIDC_CLIENT_ID ?? 'gatehouse-identity';
const clientSecret = args['client-secret'] ?? process.env.OIDC_CLIENT_SECRET ?? 'gatehouse-identity-secret';
const redirectUris = args['redirect-uri']
  ?? (process.env.OIDC_REDIRECT_URIS ?? '').split(/\s+/).filter(Boolean);
const authMethod = args['auth-method'] ?? process.env.OIDC_AUTH_METHOD ?? 'client_secret_basic';
const accountsFile = args.accounts ?? process.env.OIDC_ACCOUNTS;
const accounts = accountsFile
  ? JSON.parse(readFileSync(accountsFile, 'utf8'))
  : structuredClone(DEFAULT_ACCOUNTS);

if (redirectUris.length === 0) {
  console.error('provider.mjs: at least one --redirect-uri is required');
  process.exit(2);
}

// Signing keys, newest first. Cookie keys stay fixed so sessions survive a rotation.
const signingKeys = [await newSigningKey()];
const cookieKeys = [randomBytes(32).toString('hex')];
const adapter = createMemoryAdapter();

let provider;
let issuer;

const server = createServer((req, res) => {
  route(req, res).catch((err) => {
    console.error('provider.mjs: request failed:', err);
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain' });
    }
    res.end('internal error');
  });
});

server.listen(port, host, () => {
  const actualPort = server.address().port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  issuer = `http://${urlHost}:${actualPort}`;
  provider = buildProvider();
  console.log(`oidc-provider ready issuer=${issuer} port=${actualPort} kid=${signingKeys[0].kid}`);
});

process.on('SIGHUP', () => {
  rotate(false).catch((err) => console.error('provider.mjs: rotation failed:', err));
});
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});

async function route(req, res) {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname === '/_test/rotate-key') {
    const result = await rotate(url.searchParams.get('retire') === '1');
    sendJson(res, 200, result);
    return;
  }
  if (req.method === 'POST' && url.pathname === '/_test/groups') {
    const username = url.searchParams.get('username') ?? '';
    if (!Object.hasOwn(accounts, username)) {
      sendJson(res, 404, { error: 'unknown username' });
      return;
    }
    accounts[username].groups = (url.searchParams.get('groups') ?? '').split(',').filter(Boolean);
    console.log(`oidc-provider groups username=${username} groups=${accounts[username].groups.join(',')}`);
    sendJson(res, 200, { username, groups: accounts[username].groups });
    return;
  }
  if (req.method === 'POST' && url.pathname === '/_test/remove-account') {
    const username = url.searchParams.get('username') ?? '';
    const removed = Object.hasOwn(accounts, username);
    delete accounts[username];
    console.log(`oidc-provider removed username=${username} removed=${removed}`);
    sendJson(res, removed ? 200 : 404, { username, removed });
    return;
  }
  const interaction = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (interaction) {
    if (req.method === 'GET' && !interaction[2]) {
      await showInteraction(req, res);
      return;
    }
    if (req.method === 'POST' && interaction[2]) {
      await submitLogin(req, res);
      return;
    }
  }
  provider.callback()(req, res);
}

function buildProvider() {
  const instance = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: authMethod,
      },
    ],
    adapter,
    jwks: { keys: signingKeys.map((key) => key.jwk) },
    cookies: { keys: cookieKeys },
    claims: CLAIMS,
    scopes: SCOPES,
    // Scope claims go into the ID token too (also the one a refresh returns), so a relying
    // party needs no userinfo call.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    loadExistingGrant: autoGrant,
    findAccount: (_ctx, sub) => {
      const username = sub.replace(/^user-/, '');
      // Read at every token (login or refresh), so run-time changes show at once.
      const account = Object.hasOwn(accounts, username) ? accounts[username] : undefined;
      if (!account) {
        return undefined;
      }
      return {
        accountId: sub,
        claims: () => ({
          sub,
          email: account.email,
          email_verified: true,
          name: account.name,
          preferred_username: username,
          groups: account.groups,
        }),
      };
    },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('error', `<p id="error">${escape(out.error)}: ${escape(out.error_description ?? '')}</p>`);
    },
  });
  instance.on('server_error', (_ctx, err) => console.error('provider.mjs: server_error:', err));
  return instance;
}

// First-party test client: every requested scope and claim is granted without a consent page.
async function autoGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId
    || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (grantId) {
    const existing = await ctx.oidc.provider.Grant.find(grantId);
    if (existing) {
      return existing;
    }
  }
  const grant = new ctx.oidc.provider.Grant({
    clientId: ctx.oidc.client.clientId,
    accountId: ctx.oidc.session.accountId,
  });
  grant.addOIDCScope(SCOPES.join(' '));
  grant.addOIDCClaims(Object.values(CLAIMS).flat());
  await grant.save();
  return grant;
}

async function showInteraction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'consent') {
    // An explicit `prompt=consent` (needed for `offline_access`) is resolved only by a consent
    // result: grant everything at once, as autoGrant does.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ clientId: details.params.client_id, accountId: details.session.accountId });
    grant.addOIDCScope(SCOPES.join(' '));
    grant.addOIDCClaims(Object.values(CLAIMS).flat());
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (details.prompt.name !== 'login') {
    // Any other prompt finishes with what it has.
    await provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
    return;
  }
  sendHtml(res, 200, loginForm(details.uid, ''));
}

async function submitLogin(req, res) {
  const details = await provider.interactionDetails(req, res);
  const form = new URLSearchParams(await readBody(req));
  const username = form.get('username') ?? '';
  const account = Object.hasOwn(accounts, username) ? accounts[username] : undefined;
  if (!account || account.password !== (form.get('password') ?? '')) {
    sendHtml(res, 401, loginForm(details.uid, 'invalid username or password'));
    return;
  }
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: `user-${username}` } },
    { mergeWithLastSubmission: false },
  );
}

async function rotate(retire) {
  const fresh = await newSigningKey();
  if (retire) {
    signingKeys.length = 0;
  }
  signingKeys.unshift(fresh);
  // A provider's keystore is fixed at construction; a new instance with the new key set shares
  // the in-memory storage (sessions, grants, codes) and the cookie keys.
  provider = buildProvider();
  const kids = signingKeys.map((key) => key.kid);
  console.log(`oidc-provider rotated kid=${fresh.kid} kids=${kids.join(',')}`);
  return { kid: fresh.kid, kids };
}

async function newSigningKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = `k-${randomBytes(6).toString('hex')}`;
  return { kid, jwk: { ...jwk, kid, alg: 'RS256', use: 'sig' } };
}

function loginForm(uid, error) {
  const message = error ? `<p id="error">${escape(error)}</p>` : '';
  return page('Sign in', `${message}
<form method="post" action="/interaction/${escape(uid)}/login">
  <label>Username <input name="username" autocomplete="username" autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button type="submit">Sign in</button>
</form>`);
}

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head><body>${body}</body></html>`;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendHtml(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
