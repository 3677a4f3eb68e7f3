// A deliberately broken OpenID Connect provider for Gatehouse's relying-party tests, built with
// `jose`. It speaks just enough OIDC (discovery, authorize, token, jwks, userinfo) for a relying
// party to get an ID token, and breaks that ID token (or the redirect) in one chosen way. A
// relying party must reject every mode except `ok`.
//
// Usage:
//   node broken.mjs --port 0 --mode <mode> --client-id gatehouse-identity \
//       --client-secret s3cret [--redirect-uri <uri> ...]
// Environment fallbacks: OIDC_PORT, OIDC_MODE, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
// OIDC_REDIRECT_URIS (space-separated). Without a redirect URI any redirect_uri is accepted.
//
// Modes (the ID token is otherwise valid: RS256 with the published key, right iss/aud/nonce):
//   ok                a valid ID token (the control: proves the harness itself works)
//   wrong-nonce       `nonce` is not the one sent in the authorization request
//   expired           `exp` one hour in the past (`iat` two hours in the past)
//   unknown-key       signed by a key whose `kid` is not in the JWKS (also not after a refresh)
//   bad-signature     signed by another key under the published key's `kid`
//   alg-none          `alg: none`, unsigned (RFC 7519 §6)
//   hs256-public-key  HS256 with the published RSA public key (SPKI PEM) as the HMAC secret
//   wrong-iss         `iss` is another issuer
//   wrong-aud         `aud` does not contain the client id
//   wrong-azp         `aud` is [client id, other] with `azp` = other (OIDC Core §3.1.3.7)
//   wrong-state       the redirect carries a `state` the relying party never issued
// The mode can change at run time: `POST /_test/mode?mode=<mode>` answers {"mode":…}.
//
// There is no login page: /authorize logs in the fixed user `alice` (groups engineering,
// admins) at once and redirects back with a code. The token endpoint does check the client
// secret (client_secret_basic or client_secret_post), the redirect URI and PKCE S256
// (RFC 7636 §4.6), so a relying party's request is itself verified.
//
// When listening it prints: `broken-oidc ready issuer=http://127.0.0.1:<port> port=<port> mode=<mode>`.

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';

import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';

const MODES = new Set([
  'ok',
  'wrong-nonce',
  'expired',
  'unknown-key',
  'bad-signature',
  'alg-none',
  'hs256-public-key',
  'wrong-iss',
  'wrong-aud',
  'wrong-azp',
  'wrong-state',
]);
// Authorization codes live 60 s and are single-use (RFC 6749 §4.1.2 recommends at most 10 min).
const CODE_TTL_SECONDS = 60;
const ID_TOKEN_TTL_SECONDS = 300;
const USER = {
  sub: 'user-alice',
  email: 'alice@example.com',
  email_verified: true,
  name: 'Alice Example',
  preferred_username: 'alice',
  groups: ['engineering', 'admins'],
};

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    mode: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
  },
});

const host = args.host ?? process.env.OIDC_HOST ?? '127.0.0.1';
const port = Number(args.port ?? process.env.OIDC_PORT ?? 0);
let mode = args.mode ?? process.env.OIDC_MODE ?? 'ok';
const clientId = args['client-id'] ?? process.env.OIDC_CLIENT_ID ?? 'gatehouse-identity';
const clientSecret = args['client-secret'] ?? process.env.OIDC_CLIENT_SECRET ?? 'gatehouse-identity-secret';
const redirectUris = args['redirect-uri']
  ?? (process.env.OIDC_REDIRECT_URIS ?? '').split(/\s+/).filter(Boolean);

if (!MODES.has(mode)) {
  console.error(`broken.mjs: unknown mode ${mode}; one of ${[...MODES].join(', ')}`);
  process.exit(2);
}

const published = await newKey('k-published');
const unpublished = await newKey('k-unpublished');
const publicPem = await exportSPKI(published.publicKey);
const codes = new Map();
const accessTokens = new Map();
let issuer;

const server = createServer((req, res) => {
  route(req, res).catch((err) => {
    console.error('broken.mjs: request failed:', err);
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
  console.log(`broken-oidc ready issuer=${issuer} port=${actualPort} mode=${mode}`);
});

process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});

async function route(req, res) {
  const url = new URL(req.url, issuer);
  switch (`${req.method} ${url.pathname}`) {
    case 'GET /.well-known/openid-configuration':
      return sendJson(res, 200, discovery());
    case 'GET /jwks':
      return sendJson(res, 200, { keys: [published.publicJwk] });
    case 'GET /authorize':
      return authorize(url, res);
    case 'POST /token':
      return token(req, res);
    case 'GET /userinfo':
      return userinfo(req, res);
    case 'POST /_test/mode': {
      const next = url.searchParams.get('mode') ?? '';
      if (!MODES.has(next)) {
        return sendJson(res, 400, { error: `unknown mode ${next}` });
      }
      mode = next;
      console.log(`broken-oidc mode=${mode}`);
      return sendJson(res, 200, { mode });
    }
    default:
      return sendJson(res, 404, { error: 'not_found' });
  }
}

function discovery() {
  return {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    userinfo_endpoint: `${issuer}/userinfo`,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['openid', 'email', 'profile', 'groups'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'auth_time', 'email',
      'email_verified', 'name', 'preferred_username', 'groups'],
  };
}

function authorize(url, res) {
  const q = url.searchParams;
  const redirectUri = q.get('redirect_uri') ?? '';
  if (q.get('client_id') !== clientId || !redirectUri
    || (redirectUris.length > 0 && !redirectUris.includes(redirectUri))) {
    return sendJson(res, 400, { error: 'invalid_request', error_description: 'unknown client or redirect_uri' });
  }
  const back = new URL(redirectUri);
  const state = q.get('state') ?? '';
  const fail = (error, description) => {
    back.searchParams.set('error', error);
    back.searchParams.set('error_description', description);
    back.searchParams.set('state', state);
    return redirect(res, back.href);
  };
  if (q.get('response_type') !== 'code') {
    return fail('unsupported_response_type', 'only code');
  }
  if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
    return fail('invalid_request', 'PKCE with S256 is required');
  }
  if (!(q.get('scope') ?? '').split(' ').includes('openid')) {
    return fail('invalid_scope', 'openid is required');
  }
  const code = randomBytes(24).toString('base64url');
  codes.set(code, {
    redirectUri,
    challenge: q.get('code_challenge'),
    nonce: q.get('nonce'),
    expiresAt: now() + CODE_TTL_SECONDS,
  });
  back.searchParams.set('code', code);
  back.searchParams.set('state', mode === 'wrong-state' ? `forged-${randomBytes(8).toString('hex')}` : state);
  return redirect(res, back.href);
}

async function token(req, res) {
  const form = new URLSearchParams(await readBody(req));
  const [id, secret] = clientCredentials(req, form);
  if (id !== clientId || secret !== clientSecret) {
    return sendJson(res, 401, { error: 'invalid_client' });
  }
  if (form.get('grant_type') !== 'authorization_code') {
    return sendJson(res, 400, { error: 'unsupported_grant_type' });
  }
  const code = form.get('code') ?? '';
  const entry = codes.get(code);
  codes.delete(code);
  if (!entry || entry.expiresAt < now() || entry.redirectUri !== form.get('redirect_uri')) {
    return sendJson(res, 400, { error: 'invalid_grant', error_description: 'unknown, used or expired code' });
  }
  const verifier = form.get('code_verifier') ?? '';
  if (createHash('sha256').update(verifier).digest('base64url') !== entry.challenge) {
    return sendJson(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
  }
  const accessToken = randomBytes(24).toString('base64url');
  accessTokens.set(accessToken, now() + ID_TOKEN_TTL_SECONDS);
  return sendJson(res, 200, {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: ID_TOKEN_TTL_SECONDS,
    id_token: await idToken(entry.nonce),
  });
}

function userinfo(req, res) {
  const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
  const expiresAt = accessTokens.get(bearer);
  if (!expiresAt || expiresAt < now()) {
    return sendJson(res, 401, { error: 'invalid_token' });
  }
  return sendJson(res, 200, USER);
}

// The ID token for the current mode.
async function idToken(nonce) {
  const issuedAt = mode === 'expired' ? now() - 7200 : now();
  const claims = {
    ...USER,
    nonce: mode === 'wrong-nonce' ? `not-${nonce ?? ''}` : nonce ?? undefined,
    auth_time: issuedAt,
    iss: mode === 'wrong-iss' ? 'http://issuer.invalid' : issuer,
    aud: audience(),
    iat: issuedAt,
    exp: mode === 'expired' ? now() - 3600 : issuedAt + ID_TOKEN_TTL_SECONDS,
  };
  if (mode === 'wrong-azp') {
    claims.azp = 'someone-else';
  }
  if (mode === 'alg-none') {
    return new UnsecuredJWT(claims).encode();
  }
  if (mode === 'hs256-public-key') {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: published.kid, typ: 'JWT' })
      .sign(new TextEncoder().encode(publicPem));
  }
  let key = published;
  let kid = published.kid;
  if (mode === 'unknown-key') {
    key = unpublished;
    kid = unpublished.kid;
  } else if (mode === 'bad-signature') {
    key = unpublished;
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .sign(key.privateKey);
}

function audience() {
  switch (mode) {
    case 'wrong-aud':
      return 'someone-else';
    case 'wrong-azp':
      return [clientId, 'someone-else'];
    default:
      return clientId;
  }
}

// client_secret_basic (RFC 6749 §2.3.1: form-urlencoded id and secret) or client_secret_post.
function clientCredentials(req, form) {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) {
      return [undefined, undefined];
    }
    const unescape = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
    return [unescape(decoded.slice(0, colon)), unescape(decoded.slice(colon + 1))];
  }
  return [form.get('client_id') ?? undefined, form.get('client_secret') ?? undefined];
}

async function newKey(prefix) {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = `${prefix}-${randomBytes(4).toString('hex')}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicKey, publicJwk };
}

function now() {
  return Math.floor(Date.now() / 1000);
}

function redirect(res, location) {
  res.writeHead(302, { location, 'cache-control': 'no-store' });
  res.end();
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
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
