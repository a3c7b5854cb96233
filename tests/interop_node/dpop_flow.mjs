// Runs Flask-ROPC's password grant with DPoP (RFC 9449) through panva's
// oauth4webapi, a client nobody on this project wrote: its generic token
// endpoint request with grant_type=password and a DPoP handle, then a
// refresh and a protected call with the same key. Prints one JSON object;
// tests/test_dpop_interop.py asserts on it.
//
// Input (environment): ROPC_URL, ROPC_CLIENT_ID (a public client),
// ROPC_USERNAME, ROPC_PASSWORD.

import * as oauth from 'oauth4webapi';
import { createRequire } from 'node:module';

const version = createRequire(import.meta.url)('oauth4webapi/package.json').version;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

const base = required('ROPC_URL');
const as = { issuer: base, token_endpoint: `${base}/oauth/token` };
const client = { client_id: required('ROPC_CLIENT_ID') };
const clientAuth = oauth.None();
const insecure = { [oauth.allowInsecureRequests]: true }; // 127.0.0.1 over http
const results = { library: { name: 'oauth4webapi', version }, node: process.version, nonce_retries: 0 };

// oauth4webapi keeps the server's DPoP-Nonce in the handle; a use_dpop_nonce
// answer is retried once, as its documentation shows.
async function withNonceRetry(send, process) {
  try {
    return await process(await send());
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    results.nonce_retries += 1;
    return await process(await send());
  }
}

function failure(err) {
  return { error: err && err.error ? err.error : null, message: String(err && err.message) };
}

async function main() {
  const keyPair = await oauth.generateKeyPair('ES256');
  const DPoP = oauth.DPoP(client, keyPair);
  const params = new URLSearchParams({
    username: required('ROPC_USERNAME'),
    password: required('ROPC_PASSWORD'),
    scope: 'api offline_access',
  });
  let tokens;
  try {
    tokens = await withNonceRetry(
      () => oauth.genericTokenEndpointRequest(as, client, clientAuth, 'password', params, { DPoP, ...insecure }),
      (response) => oauth.processGenericTokenEndpointResponse(as, client, response),
    );
    results.login = { ok: true, token_type: tokens.token_type };
  } catch (err) {
    results.login = { ok: false, ...failure(err) };
    return;
  }

  const api = async (accessToken) => {
    const response = await withNonceRetry(
      () => oauth.protectedResourceRequest(accessToken, 'GET', new URL(`${base}/api/me`), undefined, undefined, { DPoP, ...insecure }),
      // It throws on a WWW-Authenticate challenge (use_dpop_nonce included).
      async (r) => r,
    );
    return { status: response.status, body: await response.json() };
  };
  try {
    results.api = await api(tokens.access_token);
  } catch (err) {
    results.api = { status: null, ...failure(err) };
  }

  try {
    const refreshed = await withNonceRetry(
      () => oauth.refreshTokenGrantRequest(as, client, clientAuth, tokens.refresh_token, { DPoP, ...insecure }),
      (response) => oauth.processRefreshTokenResponse(as, client, response),
    );
    results.refresh = { ok: true, token_type: refreshed.token_type };
    results.api_after_refresh = await api(refreshed.access_token);
    // The same token as Bearer (no proof): RFC 9449 §7.2 says refuse.
    const downgrade = await fetch(`${base}/api/me`, {
      headers: { Authorization: `Bearer ${refreshed.access_token}` },
    });
    results.bearer_downgrade = { status: downgrade.status };
  } catch (err) {
    results.refresh = { ok: false, ...failure(err) };
  }
}

main()
  .catch((err) => { results.crash = String(err && err.stack); })
  .finally(() => { process.stdout.write(JSON.stringify(results) + '\n'); });
