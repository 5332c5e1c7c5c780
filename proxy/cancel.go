package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"sync"
)

// backendKey is a BackendKeyData pair (PostgreSQL protocol §55.7, BackendKeyData): the process ID
// and secret key a client presents in a CancelRequest. Protocol 3.0 secrets are four bytes.
type backendKey struct {
	pid    uint32
	secret [4]byte
}

// cancelRegistry maps the keys the proxy handed to its clients to the keys of the upstream
// backends behind them. A client learns only its own proxy key, never the upstream's, so it can
// cancel its own query and nothing else; a CancelRequest whose secret does not match is ignored,
// exactly as PostgreSQL ignores one.
type cancelRegistry struct {
	mu      sync.Mutex
	entries map[uint32]cancelEntry
}

type cancelEntry struct {
	secret   [4]byte
	upstream backendKey
}

func newCancelRegistry() *cancelRegistry {
	return &cancelRegistry{entries: make(map[uint32]cancelEntry)}
}

// register issues a fresh random proxy key for a session whose upstream backend has key up.
func (r *cancelRegistry) register(up backendKey) (backendKey, error) {
	var b [8]byte
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return backendKey{}, err
		}
		k := backendKey{pid: binary.BigEndian.Uint32(b[:4]) & 0x7fffffff}
		copy(k.secret[:], b[4:])
		if _, taken := r.entries[k.pid]; k.pid == 0 || taken {
			continue
		}
		r.entries[k.pid] = cancelEntry{secret: k.secret, upstream: up}
		return k, nil
	}
}

// unregister forgets a proxy key when its session ends.
func (r *cancelRegistry) unregister(k backendKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[k.pid]; ok && e.secret == k.secret {
		delete(r.entries, k.pid)
	}
}

// lookup returns the upstream key behind a proxy pid and secret, comparing the secret in
// constant time.
func (r *cancelRegistry) lookup(pid uint32, secret []byte) (backendKey, bool) {
	r.mu.Lock()
	e, ok := r.entries[pid]
	r.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare(e.secret[:], secret) != 1 {
		return backendKey{}, false
	}
	return e.upstream, true
}
