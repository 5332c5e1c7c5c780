// Package transittest is an in-process HTTP server that speaks enough of
// HashiCorp Vault's HTTP API for fleproxy's tests to run the real
// github.com/hashicorp/vault/api client end to end against it: the Transit
// secrets engine, the token store, and AppRole and Kubernetes logins. No
// Vault binary can be installed where fleproxy is built, so this stands in
// for one; a separate test runs against a real Vault when VAULT_ADDR is set.
//
// Behaviour, status codes and error texts follow Vault's API documentation
// and, where the documentation is silent, Vault 1.21's source
// (builtin/logical/transit, sdk/helper/keysutil, vault/token_store.go,
// builtin/credential/approle, vault-plugin-auth-kubernetes). Every response
// uses Vault's envelope: {"request_id", "lease_id", "renewable",
// "lease_duration", "data", "wrap_info", "warnings", "auth"} on success and
// {"errors": [...]} on failure. Unknown request parameters are ignored with
// the warning Vault gives ("Endpoint ignored these unrecognized parameters").
//
// # Implemented
//
// Transit (https://developer.hashicorp.com/vault/api-docs/secret/transit), on
// any number of mounts ([Server.EnableTransit]; "transit" is enabled):
//
//   - POST /v1/:mount/keys/:name — create key; only type aes256-gcm96 (the
//     default). Warns "key NAME already existed" when it exists.
//   - GET /v1/:mount/keys/:name — read key: type, latest_version,
//     min_decryption_version, min_encryption_version, min_available_version,
//     deletion_allowed, supports_*, keys {"version": creation unix time};
//     404 with an empty error list for a key that does not exist.
//   - LIST /v1/:mount/keys (or GET ?list=true) — key names.
//   - DELETE /v1/:mount/keys/:name — 204; 400 "error deleting policy NAME:
//     deletion is not allowed for this policy" unless deletion_allowed, and
//     "…: could not delete policy; not found".
//   - POST /v1/:mount/keys/:name/rotate — adds a version (a fresh AES-256
//     key) and returns the key as read.
//   - POST /v1/:mount/keys/:name/config — min_decryption_version,
//     min_encryption_version, deletion_allowed, with Vault's checks and
//     messages ("cannot set min decryption version of N, latest key version
//     is M", version 0 forced to 1 with a warning, …).
//   - POST /v1/:mount/encrypt/:name — plaintext (base64), associated_data
//     (base64), key_version. Creates the key when it does not exist, as
//     Vault's upsert does. Answers {"ciphertext": "vault:vN:BASE64",
//     "key_version": N}, where BASE64 is the 12-byte nonce followed by the
//     AES-256-GCM ciphertext and tag, as keysutil lays it out.
//   - POST /v1/:mount/decrypt/:name — ciphertext, associated_data. 400
//     "encryption key not found", "invalid ciphertext: no prefix", "…:
//     wrong number of fields", "…: version number could not be decoded",
//     "…: version is too new", "ciphertext or signature version is
//     disallowed by policy (too old)" below min_decryption_version,
//     "invalid ciphertext: could not decode base64", "invalid ciphertext
//     length", "cipher: message authentication failed".
//   - POST /v1/:mount/rewrap/:name — ciphertext, key_version. Like Vault
//     1.21, rewrap takes no associated_data: the parameter is ignored with a
//     warning, and a ciphertext made with associated data fails to decrypt
//     with 500 "cipher: message authentication failed"
//     (https://github.com/hashicorp/vault/issues/29532).
//
// Tokens (https://developer.hashicorp.com/vault/api-docs/auth/token): every
// path but the logins needs X-Vault-Token. A missing token, or one the
// token's allow-list does not cover, gets 403 {"errors": ["permission
// denied"]}; an unknown, revoked or expired token gets 403 {"errors":
// ["permission denied", "invalid token"]}, as Vault 1.21 answers.
//
//   - GET /v1/auth/token/lookup-self — id, accessor, policies, ttl (seconds
//     left), creation_ttl, explicit_max_ttl, expire_time, renewable, …
//   - POST /v1/auth/token/renew-self — increment; the new TTL is the
//     increment or the token's own TTL, capped at its max TTL with Vault's
//     warning; 400 "lease is not renewable" for tokens that are not.
//   - POST /v1/auth/token/revoke-self — 204.
//
// Logins: POST /v1/auth/:mount/login for AppRole (role_id, secret_id; 400
// "invalid role or secret ID",
// https://developer.hashicorp.com/vault/api-docs/auth/approle#login-with-approle)
// and Kubernetes (role, jwt; 400 `invalid role name "R"`, 403 "permission
// denied" for a JWT the role does not accept,
// https://developer.hashicorp.com/vault/api-docs/auth/kubernetes#login),
// answering an "auth" block with a renewable service token whose TTL and
// max TTL come from the role.
//
// Namespaces (https://developer.hashicorp.com/vault/docs/enterprise/namespaces):
// the X-Vault-Namespace header selects a namespace, each with its own mounts
// and roles; a token works in its own namespace and those below it. Namespace
// paths as URL prefixes are not implemented.
//
// # Not implemented
//
// Batch input, derived keys (context), convergent encryption, nonce, key types
// other than aes256-gcm96, export, backup/restore, trim, datakey, HMAC, sign,
// policies as HCL (a token has an allow-list of path patterns instead), sys/
// endpoints, response wrapping, and path-prefixed namespaces. Parameters
// and key types of those features answer 400 "transittest: … not
// implemented", other paths 404 "no handler for route"; never a wrong
// result.
//
// # Test controls
//
// [Server.Stop] and [Server.Start] close and reopen the listener on the same
// address (connections are refused meanwhile); [Server.SetSealed] answers
// every request with 503 {"errors": ["Vault is sealed"]}; [Server.CreateToken]
// issues tokens with a short TTL or a limited allow-list; [Server.RevokeToken]
// revokes one; [Server.AddAppRole] and [Server.AddKubernetesRole] register
// logins; [Server.Calls] counts requests per path.
package transittest
