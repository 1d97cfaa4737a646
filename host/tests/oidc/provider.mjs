// A real OpenID provider for the hub's single sign-on tests: oidc-provider on 127.0.0.1, its
// development login and consent pages (any login name, any password), freshly generated
// signing keys. Started by hub-testkit's `OidcProvider`; the tests never reach another host.
//
// Environment:
//   OIDC_PORT           port to listen on; 0 (the default) lets the system pick a free one
//   OIDC_CLIENTS        JSON array of {client_id, client_secret, redirect_uris}
//   OIDC_ID_TOKEN_TTL   ID token lifetime in seconds (default 3600)
//
// Prints `ready <issuer>` once listening; exits when its standard input closes, so a test that
// dies takes the provider with it.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

/** The `groups` claim of the known users; anyone else signs in with no groups. */
const GROUPS = {
  alice: ['hub-admins', 'staff'],
  bob: ['staff'],
  carol: [],
};

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

function integer(name, fallback) {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) fail(`${name} must be a whole number, not ${JSON.stringify(text)}`);
  return value;
}

function clients() {
  let list;
  try {
    list = JSON.parse(process.env.OIDC_CLIENTS ?? '[]');
  } catch (error) {
    fail(`OIDC_CLIENTS is not JSON: ${error.message}`);
  }
  if (!Array.isArray(list) || list.length === 0) {
    fail('OIDC_CLIENTS must be a JSON array of {client_id, client_secret, redirect_uris}');
  }
  return list.map(({ client_id, client_secret, redirect_uris }) => ({
    client_id,
    client_secret,
    redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // What openidconnect (Rust) sends by default: HTTP Basic with the client's id and secret.
    token_endpoint_auth_method: 'client_secret_basic',
  }));
}

/** A fresh RS256 signing key: nothing signed by one run verifies in another. */
function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

const idTokenTtl = integer('OIDC_ID_TOKEN_TTL', 3600);
const server = createServer();
server.listen(integer('OIDC_PORT', 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: clients(),
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            name: id.charAt(0).toUpperCase() + id.slice(1),
            email: `${id}@example.test`,
            groups: GROUPS[id] ?? [],
          };
        },
      };
    },
    // Scope → claims; `groups` becomes a scope of its own (listed in scopes_supported).
    claims: {
      acr: null,
      auth_time: null,
      iss: null,
      sid: null,
      openid: ['sub'],
      profile: ['name'],
      email: ['email'],
      groups: ['groups'],
    },
    // Put the granted scopes' claims in the ID token itself, not only behind the userinfo
    // endpoint, as most providers do: the hub reads everything from the ID token.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: idTokenTtl,
      Interaction: 600,
      Session: 3600,
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`ready ${issuer}\n`);
});
server.on('error', (error) => fail(`cannot listen: ${error.message}`));

process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
