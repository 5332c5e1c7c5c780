package rewrite

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy/catalog"
	"github.com/fleproxy/fleproxy/proxy/codec"
)

// Env is what every session of a proxy shares: the policy, the catalog cache that resolves it,
// and one cipher and logical type per protected column. It is immutable; reloading the policy
// means building a new Env.
type Env struct {
	catalog *catalog.Cache
	policy  *policy.Policy
	columns map[*policy.Column]*columnCrypto
	log     zerolog.Logger
	audit   zerolog.Logger
}

// columnCrypto is what the proxy needs to encrypt or decrypt one protected column.
type columnCrypto struct {
	col     *policy.Column
	cipher  *keys.ColumnCipher
	typ     codec.Type
	storage envelope.Storage
}

// NewEnv prepares a cipher for every column of the catalog's policy. It fails if a keyring the
// policy names does not exist or cannot be unwrapped, or a logical type is unknown to the codecs.
// audit receives the audit records (see audit.go); zerolog.Nop() discards them.
func NewEnv(ctx context.Context, cat *catalog.Cache, km *keys.Manager, log, audit zerolog.Logger) (*Env, error) {
	pol := cat.Policy()
	env := &Env{catalog: cat, policy: pol, columns: make(map[*policy.Column]*columnCrypto), log: log, audit: audit}
	for _, col := range pol.Columns() {
		if col.Mode != policy.ModeRandomized {
			return nil, fmt.Errorf("column %s: mode %s is not supported yet", col.Name, col.Mode)
		}
		c, err := km.ColumnCipher(ctx, col.Key, col.ID, envelope.Randomized)
		if err != nil {
			return nil, fmt.Errorf("column %s: keyring %q: %w", col.Name, col.Key, err)
		}
		typ, ok := codec.Lookup(string(col.Type))
		if !ok {
			return nil, fmt.Errorf("column %s: logical type %s has no codec", col.Name, col.Type)
		}
		storage, err := envelope.ParseStorage(string(col.Storage))
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", col.Name, err)
		}
		env.columns[col] = &columnCrypto{col: col, cipher: c, typ: typ, storage: storage}
	}
	return env, nil
}

// Policy returns the policy the Env enforces.
func (e *Env) Policy() *policy.Policy { return e.policy }

// Catalog returns the catalog cache the Env resolves columns with.
func (e *Env) Catalog() *catalog.Cache { return e.catalog }
