// Runs Flask-ROPC's MFA continuation through Auth0's own Node SDK,
// @auth0/auth0-auth-js, unpatched and with no customFetch: it discovers the
// server at https://<domain>/.well-known/openid-configuration (openid-client
// checks the issuer), sends the password grant (getTokenByPassword), reads
// the mfa_token from its MFA-required error (isMfaRequiredError), then
// mfa.verify with an OTP, a refresh (getTokenByRefreshToken), and on a
// second login a wrong OTP and then mfa.verify with a recovery code. Every
// token request is a form body with client_secret_post (openid-client).
// Prints one JSON object (no tokens, codes or secrets in it);
// tests/test_mfa_interop_node.py asserts on it.
//
// Input (environment): ROPC_DOMAIN (host:port; the SDK always prepends
// https://), ROPC_CLIENT_ID, ROPC_CLIENT_SECRET, ROPC_USERNAME,
// ROPC_PASSWORD, ROPC_OTP (the user's current TOTP code, computed by the
// test), ROPC_WRONG_OTP (a code outside the accepted window),
// ROPC_RECOVERY_CODE; NODE_EXTRA_CA_CERTS names the test server's
// self-signed certificate.

import { AuthClient, isMfaRequiredError } from '@auth0/auth0-auth-js';
import { readFileSync } from 'node:fs';

// The package's "exports" hide its package.json, so read the file itself.
const manifest = new URL('./node_modules/@auth0/auth0-auth-js/package.json', import.meta.url);
const { version } = JSON.parse(readFileSync(manifest, 'utf8'));

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

const domain = required('ROPC_DOMAIN');
const credentials = { username: required('ROPC_USERNAME'), password: required('ROPC_PASSWORD') };
const results = { library: { name: '@auth0/auth0-auth-js', version }, node: process.version };

const authClient = new AuthClient({
  domain,
  clientId: required('ROPC_CLIENT_ID'),
  clientSecret: required('ROPC_CLIENT_SECRET'),
});

function failure(err) {
  const cause = (err && err.cause) || {};
  return {
    name: err && err.name,
    error: cause.error ?? null,
    error_description: cause.error_description ?? null,
    status: err && err.statusCode !== undefined ? err.statusCode : null,
    message: String(err && err.message),
  };
}

function summary(tokens) {
  return {
    token_type: tokens.tokenType ?? null,
    scope: tokens.scope ?? null,
    expires_in_future: typeof tokens.expiresAt === 'number' && tokens.expiresAt * 1000 > Date.now(),
    jwt: typeof tokens.accessToken === 'string' && tokens.accessToken.split('.').length === 3,
    refresh_token: typeof tokens.refreshToken === 'string' && tokens.refreshToken.length > 0,
    recovery_code: typeof tokens.recoveryCode === 'string' ? tokens.recoveryCode.startsWith('RC-') : null,
  };
}

// The password step must fail with the SDK's MFA-required error; its
// mfa_token is what the SDK's documentation passes on to mfa.verify.
async function passwordStep(label) {
  try {
    await authClient.getTokenByPassword({ ...credentials, scope: 'api offline_access' });
    results[label] = { mfa_required: false };
    return null;
  } catch (err) {
    results[label] = {
      mfa_required: isMfaRequiredError(err),
      ...failure(err),
      mfa_requirements: err.cause ? err.cause.mfa_requirements ?? null : null,
    };
    return isMfaRequiredError(err) ? err.cause.mfa_token : null;
  }
}

async function api(tokens) {
  const response = await fetch(`https://${domain}/api/me`, {
    headers: { Authorization: `Bearer ${tokens.accessToken}` },
  });
  const body = await response.json().catch(() => null);
  return { status: response.status, sub: body && body.sub };
}

async function step(label, run) {
  try {
    const tokens = await run();
    results[label] = { ok: true, ...summary(tokens) };
    return tokens;
  } catch (err) {
    results[label] = { ok: false, ...failure(err) };
    return null;
  }
}

async function main() {
  const metadata = await authClient.getServerMetadata();
  results.discovered = { issuer: metadata.issuer, token_endpoint: metadata.token_endpoint };
  const mfaToken = await passwordStep('password');
  if (!mfaToken) return;
  const tokens = await step('verify_otp', () =>
    authClient.mfa.verify({ mfaToken, factorType: 'otp', otp: required('ROPC_OTP') }),
  );
  if (!tokens) return;
  results.api = await api(tokens);
  const refreshed = await step('refresh', () =>
    authClient.getTokenByRefreshToken({ refreshToken: tokens.refreshToken }),
  );
  if (refreshed) results.api_after_refresh = await api(refreshed);
  // The used mfa_token again: single-use, whatever the code.
  await step('verify_again', () =>
    authClient.mfa.verify({ mfaToken, factorType: 'otp', otp: required('ROPC_OTP') }),
  );

  const second = await passwordStep('second_password');
  if (!second) return;
  await step('verify_wrong_otp', () =>
    authClient.mfa.verify({ mfaToken: second, factorType: 'otp', otp: required('ROPC_WRONG_OTP') }),
  );
  await step('verify_recovery_code', () =>
    authClient.mfa.verify({
      mfaToken: second,
      factorType: 'recovery-code',
      recoveryCode: required('ROPC_RECOVERY_CODE'),
    }),
  );
}

try {
  await main();
} catch (err) {
  results.crash = String((err && err.stack) || err);
}
process.stdout.write(`${JSON.stringify(results)}\n`);
