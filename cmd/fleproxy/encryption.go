package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
	"github.com/fleproxy/fleproxy/proxy"
	"github.com/fleproxy/fleproxy/proxy/catalog"
	"github.com/fleproxy/fleproxy/proxy/rewrite"
)

// encryption is what serve, demo and the admin commands build from the encryption section of the
// configuration: the service connection, the policy, the keys and the catalog cache.
type encryption struct {
	pool     *pgxpool.Pool
	database string
	policy   *policy.Policy
	keys     *keys.Manager
	catalog  *catalog.Cache
}

// openService connects the proxy's own pool to the protected database.
func openService(ctx context.Context, e config.Encryption) (*pgxpool.Pool, string, error) {
	pcfg, err := pgxpool.ParseConfig(e.Service)
	if err != nil {
		return nil, "", fmt.Errorf("encryption.service: %w", err)
	}
	pcfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, "", fmt.Errorf("encryption.service: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, "", fmt.Errorf("encryption.service: cannot reach the database: %w", err)
	}
	return pool, pcfg.ConnConfig.Database, nil
}

// openKeyStore returns the configured store of wrapped keyrings.
func openKeyStore(e config.Encryption, pool *pgxpool.Pool) (keys.Store, error) {
	if dir, ok := strings.CutPrefix(e.KeyStore, "dir:"); ok {
		return keys.NewFileStore(dir)
	}
	return keys.NewPostgresStore(pool), nil
}

// openEncryption builds the whole stack; check validates the policy against the catalog first.
func openEncryption(ctx context.Context, e config.Encryption, check bool) (*encryption, error) {
	pol, err := policy.Load(e.Policy)
	if err != nil {
		return nil, err
	}
	pool, db, err := openService(ctx, e)
	if err != nil {
		return nil, err
	}
	enc := &encryption{pool: pool, database: db, policy: pol}
	if check {
		if err := checkPolicy(ctx, pol, pool, e.AllowMissingTables); err != nil {
			enc.close()
			return nil, err
		}
	}
	kek, err := keys.OpenLocalKEK(e.KEKFile)
	if err != nil {
		enc.close()
		return nil, fmt.Errorf("encryption.kek_file: %w (create it with `fleproxy keys init`)", err)
	}
	store, err := openKeyStore(e, pool)
	if err != nil {
		enc.close()
		return nil, err
	}
	enc.keys = keys.NewManager(kek, store)
	if enc.catalog, err = catalog.New(ctx, pol, pool); err != nil {
		enc.close()
		return nil, err
	}
	return enc, nil
}

// checkPolicy validates pol against the live catalog; with allowMissing, tables that do not exist
// yet are tolerated.
func checkPolicy(ctx context.Context, pol *policy.Policy, q policy.Querier, allowMissing bool) error {
	return pol.CheckAgainstCatalogWith(ctx, q, policy.CheckOptions{AllowMissingTables: allowMissing})
}

func (e *encryption) close() {
	if e.pool != nil {
		e.pool.Close()
	}
}

// interceptorFactory returns the proxy's hook that gives each authenticated session its
// encryption layer.
func (e *encryption) interceptorFactory(env *rewrite.Env) func(proxy.Identity, map[string]string, zerolog.Logger) (proxy.Interceptor, error) {
	return func(id proxy.Identity, params map[string]string, log zerolog.Logger) (proxy.Interceptor, error) {
		if id.Database != e.database {
			return nil, fmt.Errorf("this proxy protects database %q; connect to it, or to the database directly for others", e.database)
		}
		return rewrite.NewSession(env, policy.Identity{Role: id.Role}, params, log), nil
	}
}

// enable prepares the ciphers of every protected column, hooks the encryption layer into pcfg and
// starts the background refresh of the catalog and the keyrings, which ends with ctx.
func (e *encryption) enable(ctx context.Context, pcfg *proxy.Config, c config.Encryption, log zerolog.Logger) error {
	env, err := rewrite.NewEnv(ctx, e.catalog, e.keys, log)
	if err != nil {
		return fmt.Errorf("policy %s: %w", c.Policy, err)
	}
	pcfg.NewInterceptor = e.interceptorFactory(env)
	go func() {
		_ = e.catalog.RefreshEvery(ctx, c.RefreshInterval, func(err error) {
			log.Warn().Err(err).Msg("catalog refresh failed; keeping the previous snapshot")
		})
	}()
	go func() {
		t := time.NewTicker(c.RefreshInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := e.keys.Refresh(ctx); err != nil {
					log.Warn().Err(err).Msg("keyring refresh failed; serving with the keys in memory")
				}
			}
		}
	}()
	log.Info().Str("policy", c.Policy).Int("protected_columns", len(e.policy.Columns())).Str("database", e.database).Msg("encryption enabled")
	return nil
}
