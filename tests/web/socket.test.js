// The socket's token renewal reads when the access token expires from the token itself.
import assert from "node:assert/strict";
import { test } from "node:test";

import { tokenExpiry } from "../../http_api/web/static/socket.js";

function token(payload) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(payload)}.signature`;
}

test("the expiry of a token is its exp claim in milliseconds", () => {
  assert.equal(tokenExpiry(token({ sub: "u", exp: 1_900_000_000 })), 1_900_000_000_000);
});

test("a token without a readable exp has no known expiry", () => {
  assert.equal(tokenExpiry(token({ sub: "u" })), null);
  assert.equal(tokenExpiry("not-a-token"), null);
  assert.equal(tokenExpiry(""), null);
});
