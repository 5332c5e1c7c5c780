package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
	kek, err := openKEK(ctx, e)
	if err != nil {
		enc.close()
		return nil, err
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

// openKEK opens the configured key-encryption key: the Transit key of encryption.vault, or the
// development-only local file of encryption.kek_file. A Vault KEK renews its token until ctx
// ends; it fails, and so does start-up, when Vault cannot be reached or refuses the credentials.
func openKEK(ctx context.Context, e config.Encryption) (keys.KEK, error) {
	if v := e.Vault; v != nil {
		kek, err := keys.OpenVaultTransitKEK(ctx, keys.VaultConfig{
			Address: v.Address, Namespace: v.Namespace, Mount: v.Mount, Key: v.Key, Timeout: v.Timeout,
			TLS: keys.VaultTLS{CAFile: v.TLS.CAFile, ServerName: v.TLS.ServerName, InsecureSkipVerify: v.TLS.InsecureSkipVerify},
			Auth: keys.VaultAuth{
				Method: v.Auth.Method, TokenFile: v.Auth.TokenFile, RoleID: v.Auth.RoleID, SecretIDFile: v.Auth.SecretIDFile,
				Role: v.Auth.Role, JWTFile: v.Auth.JWTFile, Mount: v.Auth.Mount,
			},
		})
		if errors.Is(err, keys.ErrKEKUnavailable) {
			return nil, fmt.Errorf("encryption.vault: Vault is unavailable and the keys cannot be unwrapped without it: %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("encryption.vault: %w", err)
		}
		return kek, nil
	}
	kek, err := keys.OpenLocalKEK(e.KEKFile)
	if err != nil {
		return nil, fmt.Errorf("encryption.kek_file: %w (create it with `fleproxy keys init`)", err)
	}
	return kek, nil
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
// encryption layer, following the current Env.
func (e *encryption) interceptorFactory(envs rewrite.EnvSource) func(proxy.SessionInfo) (proxy.Interceptor, error) {
	return func(si proxy.SessionInfo) (proxy.Interceptor, error) {
		if si.Identity.Database != e.database {
			return nil, fmt.Errorf("this proxy protects database %q; connect to it, or to the database directly for others", e.database)
		}
		return rewrite.NewSession(envs, rewrite.SessionInfo{ID: si.ID, Identity: policyIdentity(si.Identity), Params: si.Params, Log: si.Log}), nil
	}
}

// policyIdentity keeps the verified facts of a proxy identity that the policy matches on.
func policyIdentity(id proxy.Identity) policy.Identity {
	pid := policy.Identity{Role: id.Role, TLS: id.TLS}
	if id.Source.IsValid() {
		pid.Source = id.Source.Addr().Unmap()
	}
	if len(id.ClientCert) > 0 {
		pid.Cert = id.ClientCert[0]
	}
	return pid
}

// envHolder is the current Env; a SIGHUP reload swaps it.
type envHolder struct{ p atomic.Pointer[rewrite.Env] }

// Env returns the current Env.
func (h *envHolder) Env() *rewrite.Env { return h.p.Load() }

// enable prepares the ciphers of every protected column, hooks the encryption layer into pcfg and
// starts the background refresh of the catalog and the keyrings, which ends with ctx. It returns
// a function that reloads the policy (on SIGHUP): a policy that fails to load or validate is
// logged and the running one kept.
func (e *encryption) enable(ctx context.Context, pcfg *proxy.Config, c config.Encryption, log, audit zerolog.Logger) (reload func(), err error) {
	env, err := rewrite.NewEnv(ctx, e.catalog, e.keys, log, audit)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", c.Policy, err)
	}
	envs := &envHolder{}
	envs.p.Store(env)
	pcfg.NewInterceptor = e.interceptorFactory(envs)

	var mu sync.Mutex // one reload at a time
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	refreshCatalog := func(ctx context.Context, cat *catalog.Cache) {
		_ = cat.RefreshEvery(ctx, c.RefreshInterval, func(err error) {
			log.Warn().Err(err).Msg("catalog refresh failed; keeping the previous snapshot")
		})
	}
	go refreshCatalog(refreshCtx, e.catalog)
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

	reload = func() {
		mu.Lock()
		defer mu.Unlock()
		next, cat, err := e.loadEnv(ctx, c, log, audit)
		if err != nil {
			log.Error().Err(err).Msg("policy reload failed; keeping the running policy")
			audit.Warn().Str("event", "policy_reload_failed").Str("policy", c.Policy).Msg("policy reload failed")
			return
		}
		removed, added := columnChanges(envs.Env().Policy(), next.Policy())
		stopRefresh()
		refreshCtx, stopRefresh = context.WithCancel(ctx)
		go refreshCatalog(refreshCtx, cat)
		envs.p.Store(next)
		ev := log.Info()
		if len(removed) > 0 {
			// Values written to these columns from now on are stored as the client sends them.
			ev = log.Warn()
		}
		ev.Str("policy", c.Policy).Int("protected_columns", len(next.Policy().Columns())).
			Strs("columns_no_longer_protected", removed).Strs("columns_newly_protected", added).Msg("policy reloaded")
		audit.Info().Str("event", "policy_reloaded").Str("policy", c.Policy).
			Strs("columns_no_longer_protected", removed).Strs("columns_newly_protected", added).Msg("policy reloaded")
	}
	return reload, nil
}

// loadEnv reads and validates the policy file again and builds a new Env for it.
func (e *encryption) loadEnv(ctx context.Context, c config.Encryption, log, audit zerolog.Logger) (*rewrite.Env, *catalog.Cache, error) {
	pol, err := policy.Load(c.Policy)
	if err != nil {
		return nil, nil, err
	}
	if err := checkPolicy(ctx, pol, e.pool, c.AllowMissingTables); err != nil {
		return nil, nil, err
	}
	cat, err := catalog.New(ctx, pol, e.pool)
	if err != nil {
		return nil, nil, err
	}
	env, err := rewrite.NewEnv(ctx, cat, e.keys, log, audit)
	if err != nil {
		return nil, nil, fmt.Errorf("policy %s: %w", c.Policy, err)
	}
	return env, cat, nil
}

// columnChanges lists the protected columns a reload drops and adds.
func columnChanges(before, after *policy.Policy) (removed, added []string) {
	in := func(p *policy.Policy, name policy.ColumnName) bool {
		_, ok := p.Column(name.Schema, name.Table, name.Column)
		return ok
	}
	for _, c := range before.Columns() {
		if !in(after, c.Name) {
			removed = append(removed, c.Name.String())
		}
	}
	for _, c := range after.Columns() {
		if !in(before, c.Name) {
			added = append(added, c.Name.String())
		}
	}
	return removed, added
}
