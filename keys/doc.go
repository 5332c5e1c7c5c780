// Package keys holds fleproxy's key hierarchy: a key-encryption key (KEK),
// keyrings of data keys wrapped by it, the store that keeps the wrapped
// keyrings, and the per-column encryption capability handed to the proxy.
//
// The hierarchy:
//
//   - A [KEK] wraps and unwraps small secrets. In production it is a Vault
//     Transit key that never leaves Vault; [LocalKEK] is a development-only
//     KEK in a local file.
//   - A keyring is one Tink keyset per key name in the policy
//     (https://developers.google.com/tink/design/keysets). Today a keyring
//     is of [KindAEAD]: AES-256-GCM keys with Tink's TINK output prefix.
//     Rotation adds a key and makes it primary; old keys keep decrypting.
//   - A [Store] keeps each keyring only as a [Record] whose keyset is
//     encrypted by the KEK with associated data "fleproxy/keyring/" + name.
//     [PostgresStore] keeps records in the protected database so every proxy
//     replica sees the same keyrings; [FileStore] is for tests and
//     single-node development.
//   - A [Manager] creates, rotates, unwraps and caches keyrings in memory
//     ([Keyring]) and hands out [ColumnCipher] values: "encrypt/decrypt for
//     column X" capabilities that never expose key bytes.
//
// Ciphertexts are envelopes in the format of package
// github.com/fleproxy/fleproxy/envelope (docs/ciphertext.md).
//
// Nothing in this package logs, and no error it returns carries key
// material, a wrapped keyset or a plaintext value. It knows nothing of the
// PostgreSQL wire protocol.
package keys
