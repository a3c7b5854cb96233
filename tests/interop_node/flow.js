'use strict';
// Runs Flask-ROPC's password grant flow with simple-oauth2, a Node.js OAuth
// client nobody on this project wrote, and prints one JSON object with what
// happened at each step; tests/test_interop.py asserts on it.
//
// Input (environment, so secrets stay off the command line):
//   ROPC_URL            server base URL, e.g. http://127.0.0.1:5000
//   ROPC_CLIENT_ID      client id
//   ROPC_CLIENT_SECRET  client secret
//   ROPC_AUTH_METHOD    client_secret_basic | client_secret_post
//   ROPC_USERNAME       resource owner's username
//   ROPC_PASSWORD       resource owner's password
//
// Every step is recorded even when it fails, so a failure shows which step
// broke. Exit status is 0 whenever the JSON could be printed.

const { ResourceOwnerPassword } = require('simple-oauth2');
const simpleOauth2Version = require('simple-oauth2/package.json').version;

const SCOPE = ['api', 'offline_access'];

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`environment variable ${name} is required`);
  }
  return value;
}

// The token fields the test checks (simple-oauth2 adds expires_at itself).
function tokenSummary(token) {
  return {
    access_token: token.access_token,
    refresh_token: token.refresh_token,
    token_type: token.token_type,
    expires_in: token.expires_in,
    scope: token.scope,
    display_name: token.display_name,
    expires_at_set: token.expires_at instanceof Date,
  };
}

// simple-oauth2 rejects with a Boom error from @hapi/wreck; the server's
// JSON body is in err.data.payload.
function failure(err) {
  const payload = err && err.data ? err.data.payload : undefined;
  return {
    status: err && err.output ? err.output.statusCode : null,
    error: payload && typeof payload === 'object' ? payload.error : null,
    message: String(err && err.message),
  };
}

// The protected resource: simple-oauth2 only gets tokens, so use fetch.
async function callApi(base, accessToken) {
  const response = await fetch(`${base}/api/me`, {
    headers: { Authorization: `Bearer ${accessToken}` },
  });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return {
    status: response.status,
    sub: body && typeof body === 'object' ? body.sub : null,
    www_authenticate: response.headers.get('www-authenticate'),
  };
}

async function step(results, name, action) {
  try {
    results[name] = await action();
    return true;
  } catch (err) {
    results[name] = { failed: failure(err) };
    return false;
  }
}

async function refused(results, name, action) {
  try {
    const token = await action();
    results[name] = { refused: false, token: tokenSummary(token.token) };
  } catch (err) {
    results[name] = { refused: true, ...failure(err) };
  }
}

async function revoke(token, type) {
  // Resolves with the parsed JSON body; rejects on any HTTP error status.
  const body = await token.revoke(type);
  return { ok: true, body };
}

async function main() {
  const base = required('ROPC_URL');
  const authMethod = required('ROPC_AUTH_METHOD');
  const methods = {
    client_secret_basic: 'header',
    client_secret_post: 'body',
  };
  if (!(authMethod in methods)) {
    throw new Error(`unknown ROPC_AUTH_METHOD ${authMethod}`);
  }
  const client = new ResourceOwnerPassword({
    client: { id: required('ROPC_CLIENT_ID'), secret: required('ROPC_CLIENT_SECRET') },
    auth: { tokenHost: base, tokenPath: '/oauth/token', revokePath: '/oauth/revoke' },
    // 'strict' (the default) form-urlencodes id and secret before base64,
    // as RFC 6749 2.3.1 says; set explicitly to document it.
    options: { authorizationMethod: methods[authMethod], credentialsEncodingMode: 'strict' },
  });
  const credentials = {
    username: required('ROPC_USERNAME'),
    password: required('ROPC_PASSWORD'),
    scope: SCOPE,
  };

  const results = {
    library: { name: 'simple-oauth2', version: simpleOauth2Version },
    node: process.version,
    auth_method: authMethod,
  };
  let first;
  let second;
  const loggedIn = await step(results, 'login', async () => {
    first = await client.getToken(credentials);
    return tokenSummary(first.token);
  });
  if (!loggedIn) {
    return results;
  }
  results.api_before = await callApi(base, first.token.access_token);

  const refreshed = await step(results, 'refreshed', async () => {
    second = await first.refresh();
    return tokenSummary(second.token);
  });
  if (!refreshed) {
    return results;
  }
  results.api_after_refresh = await callApi(base, second.token.access_token);
  await step(results, 'revoke_access', () => revoke(second, 'access_token'));
  results.api_after_revoke = await callApi(base, second.token.access_token);
  // One-time rotation: the first refresh token was used, so it is refused;
  // reuse detection then revokes its family, so the second one is too.
  await refused(results, 'replay_old_refresh', () => first.refresh());
  await refused(results, 'refresh_after_reuse', () => second.refresh());

  // Revoking a refresh token (with simple-oauth2's token_type_hint).
  let third;
  const again = await step(results, 'second_login', async () => {
    third = await client.getToken(credentials);
    return tokenSummary(third.token);
  });
  if (!again) {
    return results;
  }
  await step(results, 'revoke_refresh', () => revoke(third, 'refresh_token'));
  await refused(results, 'refresh_after_revoke', () => third.refresh());
  results.api_after_refresh_revoke = await callApi(base, third.token.access_token);
  return results;
}

main()
  .then((results) => {
    process.stdout.write(`${JSON.stringify(results)}\n`);
  })
  .catch((err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  });
