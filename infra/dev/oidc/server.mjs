// A real OpenID Connect provider on loopback for gedrag's single sign-on tests: panva's
// oidc-provider (OpenID Certified), configured from the environment, with a plain login form.
//
// Environment:
//   OIDC_PORT      port on 127.0.0.1 (0 = any free one)
//   OIDC_ACCOUNTS  JSON list of {sub, username, password, email, name, groups}
//   OIDC_CLIENTS   JSON list of oidc-provider client metadata; a client whose id ends in
//                  "-short" gets access tokens that expire after 2 s (the expiry tests)
//   OIDC_RESOURCE  the API's resource indicator: access tokens are JWTs with this audience
//
// stdout: one JSON line {"issuer": "http://127.0.0.1:<port>"} once listening.
import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '[]');
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');
const resource = process.env.OIDC_RESOURCE || 'urn:gedrag:api';
const bySub = new Map(accounts.map((a) => [a.sub, a]));
const SHORT_TTL_S = 2;
const TTL_S = 3600;

function claimsOf(account) {
  return {
    sub: account.sub,
    email: account.email,
    email_verified: true,
    name: account.name,
    preferred_username: account.username,
    groups: account.groups || [],
  };
}

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-1', alg: 'RS256', use: 'sig' };

const server = http.createServer();
server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    // The ID token carries the scopes' claims (groups among them), not only /userinfo.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== resource) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'openid email profile groups',
            audience: resource,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      AccessToken: (_ctx, _token, client) => (client.clientId.endsWith('-short') ? SHORT_TTL_S : TTL_S),
      IdToken: (_ctx, _token, client) => (client.clientId.endsWith('-short') ? SHORT_TTL_S : TTL_S),
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      AuthorizationCode: 60,
    },
    // The API reads who is calling from its JWT access token alone.
    extraTokenClaims: (_ctx, token) => {
      const account = bySub.get(token.accountId);
      if (!account) return undefined;
      const { sub: _sub, ...claims } = claimsOf(account);
      return claims;
    },
    findAccount: (_ctx, sub) => {
      const account = bySub.get(sub);
      if (!account) return undefined;
      return { accountId: sub, claims: () => claimsOf(account) };
    },
  });
  provider.proxy = false;
  const callback = provider.callback();

  async function body(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  function page(res, status, html) {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>Test provider</title></head><body>${html}</body></html>`);
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function loginForm(res, uid, error) {
    page(res, 200, `<h1>Sign in</h1>${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Username <input id="username" name="username" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="sign-in" type="submit">Sign in</button></form>`);
  }

  async function consent(req, res, details) {
    const { prompt, params, session, grantId } = details;
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const saved = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId: saved } }, {
      mergeWithLastSubmission: true,
    });
  }

  async function interaction(req, res, url) {
    const [, , uid, action] = url.pathname.split('/');
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET' && !action) {
      if (details.prompt.name === 'consent') return consent(req, res, details);
      return loginForm(res, uid);
    }
    if (req.method === 'POST' && action === 'login') {
      const form = await body(req);
      const account = accounts.find(
        (a) => a.username === form.get('username') && a.password === form.get('password'),
      );
      if (!account) return loginForm(res, uid, 'Unknown user or wrong password.');
      return provider.interactionFinished(req, res, { login: { accountId: account.sub } }, {
        mergeWithLastSubmission: false,
      });
    }
    return page(res, 404, 'not found');
  }

  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    if (!url.pathname.startsWith('/interaction/')) return callback(req, res);
    return interaction(req, res, url).catch((err) => {
      page(res, 400, `<p id="error">${escape(err.message)}</p>`);
    });
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
