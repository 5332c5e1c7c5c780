package transittest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// keyTypeAES256 is the only key type implemented, Transit's default.
const keyTypeAES256 = "aes256-gcm96"

// errTooOld is keysutil.ErrTooOld, the text Vault gives for a ciphertext
// below min_decryption_version.
const errTooOld = "ciphertext or signature version is disallowed by policy (too old)"

// keyNameRE is framework.GenericNameRegex, the shape of a key name in
// Transit's paths.
var keyNameRE = regexp.MustCompile(`^\w(([\w-.@]+)?\w)?$`)

type transitMount struct {
	keys map[string]*transitKey
}

func newTransitMount() *transitMount { return &transitMount{keys: map[string]*transitKey{}} }

// transitKey is a named key ring (keysutil.Policy) of AES-256-GCM versions.
type transitKey struct {
	name            string
	versions        map[int]keyVersion
	latest          int
	minDecryption   int
	minEncryption   int
	deletionAllowed bool
}

type keyVersion struct {
	aead    cipher.AEAD
	created time.Time
}

func newTransitKey(name string) *transitKey {
	k := &transitKey{name: name, versions: map[int]keyVersion{}, minDecryption: 1}
	k.rotate()
	return k
}

func (k *transitKey) rotate() {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic("transittest: no randomness")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	k.latest++
	k.versions[k.latest] = keyVersion{aead: gcm, created: time.Now()}
}

// info is the key as transit/keys/:name reads it (path_keys.go,
// formatKeyPolicy).
func (k *transitKey) info() map[string]any {
	versions := make(map[string]int64, len(k.versions))
	for v, kv := range k.versions {
		versions[strconv.Itoa(v)] = kv.created.Unix()
	}
	return map[string]any{
		"name": k.name, "type": keyTypeAES256, "derived": false,
		"deletion_allowed": k.deletionAllowed, "exportable": false, "allow_plaintext_backup": false,
		"min_available_version": 0, "min_decryption_version": k.minDecryption,
		"min_encryption_version": k.minEncryption, "latest_version": k.latest,
		"supports_encryption": true, "supports_decryption": true, "supports_signing": false,
		"supports_derivation": true, "auto_rotate_period": 0, "imported_key": false,
		"keys": versions,
	}
}

// encrypt is keysutil.Policy.EncryptWithOptions for an AES-256-GCM key:
// "vault:vN:" + base64(nonce || ciphertext || tag).
func (k *transitKey) encrypt(ver int, plaintext, ad []byte) (string, int, *apiError) {
	switch {
	case ver == 0:
		ver = k.latest
	case ver < 0:
		return "", 0, badRequest("requested version for encryption is negative")
	case ver > k.latest:
		return "", 0, badRequest("requested version for encryption is higher than the latest key version")
	case ver < k.minEncryption:
		return "", 0, badRequest("requested version for encryption is less than the minimum encryption key version")
	}
	aead := k.versions[ver].aead
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", 0, &apiError{http.StatusInternalServerError, []string{err.Error()}}
	}
	ct := aead.Seal(nonce, nonce, plaintext, ad)
	return "vault:v" + strconv.Itoa(ver) + ":" + base64.StdEncoding.EncodeToString(ct), ver, nil
}

// decrypt is keysutil.Policy.DecryptWithOptions. A failed authentication
// is a plain error in Vault (not a UserError), which decrypt reports as 400
// and rewrap as 500; authStatus is that status.
func (k *transitKey) decrypt(value string, ad []byte, authStatus int) ([]byte, *apiError) {
	rest, ok := strings.CutPrefix(value, "vault:v")
	if !ok {
		return nil, badRequest("invalid ciphertext: no prefix")
	}
	verStr, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, badRequest("invalid ciphertext: wrong number of fields")
	}
	ver, err := strconv.Atoi(verStr)
	if err != nil {
		return nil, badRequest("invalid ciphertext: version number could not be decoded")
	}
	if ver == 0 {
		ver = 1
	}
	if ver > k.latest {
		return nil, badRequest("invalid ciphertext: version is too new")
	}
	if k.minDecryption > 0 && ver < k.minDecryption {
		return nil, badRequest(errTooOld)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, badRequest("invalid ciphertext: could not decode base64")
	}
	kv, ok := k.versions[ver]
	if !ok {
		return nil, &apiError{http.StatusInternalServerError, []string{fmt.Sprintf("no key found for version %d", ver)}}
	}
	n := kv.aead.NonceSize()
	if len(raw) < n {
		return nil, badRequest("invalid ciphertext length")
	}
	pt, err := kv.aead.Open(nil, raw[:n], raw[n:], ad)
	if err != nil {
		return nil, &apiError{authStatus, []string{err.Error()}}
	}
	return pt, nil
}

// handle serves the Transit paths under the mount; rest is the path after
// the mount. s.mu is held.
func (m *transitMount) handle(req *request, rest string) (*response, *apiError) {
	parts := strings.Split(rest, "/")
	switch {
	case rest == "keys" && req.method == "list":
		names := make([]string, 0, len(m.keys))
		for n := range m.keys {
			names = append(names, n)
		}
		slices.Sort(names)
		if len(names) == 0 {
			return nil, &apiError{http.StatusNotFound, []string{}}
		}
		return &response{Data: map[string]any{"keys": names}}, nil
	case len(parts) < 2 || !keyNameRE.MatchString(parts[1]):
		return nil, errUnsupportedPath
	}
	name := parts[1]
	switch {
	case len(parts) == 2 && parts[0] == "keys":
		switch req.method {
		case "read":
			return m.readKey(name)
		case "write":
			return m.createKey(req, name)
		case "delete":
			return m.deleteKey(name)
		}
		return nil, errUnsupportedMethod
	case len(parts) == 3 && parts[0] == "keys" && parts[2] == "rotate":
		if req.method != "write" {
			return nil, errUnsupportedMethod
		}
		return m.rotateKey(req, name)
	case len(parts) == 3 && parts[0] == "keys" && parts[2] == "config":
		if req.method != "write" {
			return nil, errUnsupportedMethod
		}
		return m.configKey(req, name)
	case len(parts) == 2 && parts[0] == "encrypt":
		if req.method != "write" {
			return nil, errUnsupportedMethod
		}
		return m.encrypt(req, name)
	case len(parts) == 2 && parts[0] == "decrypt":
		if req.method != "write" {
			return nil, errUnsupportedMethod
		}
		return m.decrypt(req, name)
	case len(parts) == 2 && parts[0] == "rewrap":
		if req.method != "write" {
			return nil, errUnsupportedMethod
		}
		return m.rewrap(req, name)
	}
	return nil, errUnsupportedPath
}

func (m *transitMount) readKey(name string) (*response, *apiError) {
	k := m.keys[name]
	if k == nil {
		// pathPolicyRead returns no response, which Vault's HTTP layer
		// answers with 404 and an empty error list.
		return nil, &apiError{http.StatusNotFound, []string{}}
	}
	return &response{Data: k.info()}, nil
}

func (m *transitMount) createKey(req *request, name string) (*response, *apiError) {
	typ, aerr := req.str("type")
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkKeyType(typ); aerr != nil {
		return nil, aerr
	}
	if aerr := req.refuse("this key option", "derived", "convergent_encryption", "exportable", "allow_plaintext_backup", "managed_key_name", "managed_key_id"); aerr != nil {
		return nil, aerr
	}
	req.ignore("auto_rotate_period", "key_size")
	resp := &response{}
	k := m.keys[name]
	if k == nil {
		k = newTransitKey(name)
		m.keys[name] = k
	} else {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("key %s already existed", name))
	}
	resp.Data = k.info()
	return resp, nil
}

func checkKeyType(typ string) *apiError {
	switch typ {
	case "", keyTypeAES256:
		return nil
	case "aes128-gcm96", "chacha20-poly1305", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519",
		"rsa-2048", "rsa-3072", "rsa-4096", "hmac", "managed_key", "aes128-cmac", "aes256-cmac", "aes128-cbc", "aes256-cbc":
		return notImplemented("key type " + typ)
	default:
		return badRequest("unknown key type: %v", typ)
	}
}

func (m *transitMount) deleteKey(name string) (*response, *apiError) {
	k := m.keys[name]
	switch {
	case k == nil:
		return nil, badRequest("error deleting policy %s: could not delete policy; not found", name)
	case !k.deletionAllowed:
		return nil, badRequest("error deleting policy %s: deletion is not allowed for this policy", name)
	}
	delete(m.keys, name)
	return nil, nil
}

func (m *transitMount) rotateKey(req *request, name string) (*response, *apiError) {
	req.ignore("managed_key_name", "managed_key_id")
	k := m.keys[name]
	if k == nil {
		return nil, badRequest("key not found")
	}
	k.rotate()
	return &response{Data: k.info()}, nil
}

// configKey is path_keys_config.go pathKeysConfigWrite, for the
// parameters that matter to an AES key.
func (m *transitMount) configKey(req *request, name string) (*response, *apiError) {
	k := m.keys[name]
	if k == nil {
		return nil, badRequest("no existing key named %s could be found", name)
	}
	minDec, hasMinDec, aerr := req.integer("min_decryption_version")
	if aerr != nil {
		return nil, aerr
	}
	minEnc, hasMinEnc, aerr := req.integer("min_encryption_version")
	if aerr != nil {
		return nil, aerr
	}
	allowDel, hasAllowDel, aerr := req.boolean("deletion_allowed")
	if aerr != nil {
		return nil, aerr
	}
	if aerr := req.refuse("this key option", "exportable", "allow_plaintext_backup"); aerr != nil {
		return nil, aerr
	}
	autoRotate, aerr := req.seconds("auto_rotate_period")
	if aerr != nil {
		return nil, aerr
	}
	if autoRotate != 0 && autoRotate < time.Hour {
		return nil, badRequest("auto rotate period must be 0 to disable or at least an hour")
	}
	next := *k
	resp := &response{}
	if hasMinDec {
		if minDec < 0 {
			return nil, badRequest("min decryption version cannot be negative")
		}
		if minDec == 0 {
			minDec = 1
			resp.Warnings = append(resp.Warnings, "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1")
		}
		if minDec != next.minDecryption {
			if minDec > next.latest {
				return nil, badRequest("cannot set min decryption version of %d, latest key version is %d", minDec, next.latest)
			}
			next.minDecryption = minDec
		}
	}
	if hasMinEnc {
		if minEnc < 0 {
			return nil, badRequest("min encryption version cannot be negative")
		}
		if minEnc != next.minEncryption {
			if minEnc > next.latest {
				return nil, badRequest("cannot set min encryption version of %d, latest key version is %d", minEnc, next.latest)
			}
			next.minEncryption = minEnc
		}
	}
	if next.minEncryption > 0 && next.minEncryption < next.minDecryption {
		return nil, badRequest("cannot set min encryption/decryption values; min encryption version of %d must be greater than or equal to min decryption version of %d", next.minEncryption, next.minDecryption)
	}
	if hasAllowDel {
		next.deletionAllowed = allowDel
	}
	*k = next
	resp.Data = k.info()
	return resp, nil
}

// decodeAD decodes associated_data; Vault's AssocDataFactory failure is an
// InternalError (500).
func decodeAD(req *request) ([]byte, *apiError) {
	s, aerr := req.str("associated_data")
	if aerr != nil || s == "" {
		return nil, aerr
	}
	ad, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &apiError{http.StatusInternalServerError, []string{fmt.Sprintf("unable to get associated_data/additional_data from factory[0]: %v", err)}}
	}
	return ad, nil
}

// encrypt is path_encrypt.go pathEncryptWrite for one item.
func (m *transitMount) encrypt(req *request, name string) (*response, *apiError) {
	if aerr := req.refuse("batch_input, context, nonce or convergent encryption", "batch_input", "context", "nonce", "convergent_encryption"); aerr != nil {
		return nil, aerr
	}
	req.ignore("padding_scheme", "partial_failure_response_code", "iv")
	b64, aerr := req.str("plaintext")
	if aerr != nil {
		return nil, aerr
	}
	if _, given := req.params["plaintext"]; !given {
		return nil, badRequest("missing plaintext to encrypt")
	}
	pt, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, badRequest("%s", err.Error())
	}
	ver, _, aerr := req.integer("key_version")
	if aerr != nil {
		return nil, aerr
	}
	typ, aerr := req.str("type")
	if aerr != nil {
		return nil, aerr
	}
	ad, aerr := decodeAD(req)
	if aerr != nil {
		return nil, aerr
	}
	resp := &response{}
	k := m.keys[name]
	if k == nil {
		// The encrypt path's existence check turns a write to a missing key
		// into a create: the key is upserted with the given type.
		if aerr := checkKeyType(typ); aerr != nil {
			return nil, aerr
		}
		k = newTransitKey(name)
		m.keys[name] = k
	}
	ct, used, aerr := k.encrypt(ver, pt, ad)
	if aerr != nil {
		return nil, aerr
	}
	resp.Data = map[string]any{"ciphertext": ct, "key_version": used}
	return resp, nil
}

// decrypt is path_decrypt.go pathDecryptWrite for one item.
func (m *transitMount) decrypt(req *request, name string) (*response, *apiError) {
	if aerr := req.refuse("batch_input, context or nonce", "batch_input", "context", "nonce"); aerr != nil {
		return nil, aerr
	}
	req.ignore("padding_scheme", "partial_failure_response_code")
	ct, aerr := req.str("ciphertext")
	if aerr != nil {
		return nil, aerr
	}
	if ct == "" {
		return nil, badRequest("missing ciphertext to decrypt")
	}
	ad, aerr := decodeAD(req)
	if aerr != nil {
		return nil, aerr
	}
	k := m.keys[name]
	if k == nil {
		return nil, badRequest("encryption key not found")
	}
	pt, aerr := k.decrypt(ct, ad, http.StatusBadRequest)
	if aerr != nil {
		return nil, aerr
	}
	return &response{Data: map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}}, nil
}

// rewrap is path_rewrap.go pathRewrapWrite for one item. Vault 1.21's
// rewrap has no associated_data field: it is not marked seen, so it is
// reported as ignored, and the decryption runs without it.
func (m *transitMount) rewrap(req *request, name string) (*response, *apiError) {
	if aerr := req.refuse("batch_input, context or nonce", "batch_input", "context", "nonce"); aerr != nil {
		return nil, aerr
	}
	req.ignore("encrypt_padding_scheme", "decrypt_padding_scheme")
	ct, aerr := req.str("ciphertext")
	if aerr != nil {
		return nil, aerr
	}
	if ct == "" {
		return nil, badRequest("missing ciphertext to decrypt")
	}
	ver, _, aerr := req.integer("key_version")
	if aerr != nil {
		return nil, aerr
	}
	k := m.keys[name]
	if k == nil {
		return nil, badRequest("encryption key not found")
	}
	pt, aerr := k.decrypt(ct, nil, http.StatusInternalServerError)
	if aerr != nil {
		return nil, aerr
	}
	out, used, aerr := k.encrypt(ver, pt, nil)
	if aerr != nil {
		return nil, aerr
	}
	return &response{Data: map[string]any{"ciphertext": out, "key_version": used}}, nil
}
