package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
)

// maxTokenFile bounds how much of a token file is read; Vault tokens are
// about a hundred bytes.
const maxTokenFile = 64 << 10

// Re-login backoff of the renewal goroutine.
const (
	minReloginWait = 500 * time.Millisecond
	maxReloginWait = 30 * time.Second
)

// vaultAuthMethod yields a Vault token: a secret whose Auth carries the
// client token, its TTL in seconds (0: never expires) and whether it is
// renewable, as a login answers.
type vaultAuthMethod interface {
	login(ctx context.Context, c *api.Client) (*api.Secret, error)
	// path is the Vault path login calls, for errors.
	path() string
}

func newVaultAuth(a VaultAuth, envToken string) (vaultAuthMethod, error) {
	switch a.Method {
	case VaultAuthToken:
		if a.TokenFile == "" && envToken == "" {
			return nil, errors.New("keys: Vault auth token: no token; set auth.token_file or VAULT_TOKEN")
		}
		return &tokenAuth{file: a.TokenFile, static: envToken}, nil
	case VaultAuthAppRole:
		return &appRoleAuth{roleID: a.RoleID, secretIDFile: a.SecretIDFile, mount: a.Mount}, nil
	case VaultAuthKubernetes:
		return &kubernetesAuth{role: a.Role, jwtFile: a.JWTFile, mount: a.Mount}, nil
	}
	return nil, fmt.Errorf("keys: Vault auth method %q: want token, approle or kubernetes", a.Method)
}

// loginClient is a copy of c without a token (a stale one must not go with
// a login) and without response wrapping.
func loginClient(c *api.Client) (*api.Client, error) {
	lc, err := c.CloneWithHeaders() // the headers carry the namespace
	if err != nil {
		return nil, err
	}
	lc.ClearToken()
	lc.SetWrappingLookupFunc(noWrapping)
	return lc, nil
}

// tokenAuth uses a given token: from a file, re-read at each login so a
// token rotated by Vault Agent is picked up, or from VAULT_TOKEN. Its
// "login" looks the token up (GET /v1/auth/token/lookup-self,
// https://developer.hashicorp.com/vault/api-docs/auth/token#lookup-a-token-self)
// to learn its TTL and whether it is renewable.
type tokenAuth struct {
	file   string
	static string
}

func (a *tokenAuth) path() string { return "auth/token/lookup-self" }

func (a *tokenAuth) login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	token := a.static
	if a.file != "" {
		var err error
		if token, err = readTokenFile(a.file); err != nil {
			return nil, err
		}
	}
	lc, err := loginClient(c)
	if err != nil {
		return nil, err
	}
	lc.SetToken(token)
	s, err := lc.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, err
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, errors.New("Vault answered lookup-self without a TTL")
	}
	lease := int(ttl / time.Second)
	if lease == 0 && s.Data["expire_time"] != nil {
		lease = 1 // under a second left; 0 would mean "never expires"
	}
	renewable, _ := s.TokenIsRenewable()
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: token, Renewable: renewable, LeaseDuration: lease}}, nil
}

// readTokenFile reads a token file; its content never appears in errors.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	defer clear(b)
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s: larger than %d bytes", path, maxTokenFile)
	}
	token := string(bytes.TrimSpace(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return token, nil
}

// appRoleAuth logs in with AppRole (POST /v1/auth/:mount/login,
// https://developer.hashicorp.com/vault/api-docs/auth/approle#login-with-approle)
// through vault/api/auth/approle, which reads the secret ID file at each
// login.
type appRoleAuth struct {
	roleID, secretIDFile, mount string
}

func (a *appRoleAuth) path() string { return "auth/" + a.mount + "/login" }

func (a *appRoleAuth) login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	m, err := approle.NewAppRoleAuth(a.roleID, &approle.SecretID{FromFile: a.secretIDFile}, approle.WithMountPath(a.mount))
	if err != nil {
		return nil, err
	}
	lc, err := loginClient(c)
	if err != nil {
		return nil, err
	}
	return lc.Auth().Login(ctx, m)
}

// kubernetesAuth logs in with the pod's service-account JWT (POST
// /v1/auth/:mount/login,
// https://developer.hashicorp.com/vault/api-docs/auth/kubernetes#login)
// through vault/api/auth/kubernetes. The JWT file is read at each login:
// Kubernetes rotates projected tokens.
type kubernetesAuth struct {
	role, jwtFile, mount string
}

func (a *kubernetesAuth) path() string { return "auth/" + a.mount + "/login" }

func (a *kubernetesAuth) login(ctx context.Context, c *api.Client) (*api.Secret, error) {
	m, err := kubernetes.NewKubernetesAuth(a.role, kubernetes.WithServiceAccountTokenPath(a.jwtFile), kubernetes.WithMountPath(a.mount))
	if err != nil {
		return nil, err
	}
	lc, err := loginClient(c)
	if err != nil {
		return nil, err
	}
	return lc.Auth().Login(ctx, m)
}

// login gets a token from the auth method and makes it the client's, then
// hands the secret to the renewal goroutine. With stale set, it does
// nothing (and returns nil, nil) if the client's token is no longer stale:
// another caller has logged in meanwhile.
func (k *VaultTransitKEK) login(ctx context.Context, stale string) (*api.Secret, error) {
	k.loginMu.Lock()
	defer k.loginMu.Unlock()
	if stale != "" && k.client.Token() != stale {
		return nil, nil
	}
	cctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	s, err := k.auth.login(cctx, k.client)
	if err != nil {
		return nil, newVaultError(ctx, cctx, "login", k.auth.path(), k.addr, k.timeout, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("keys: Vault login (%s): Vault answered without a token", k.auth.path())
	}
	k.client.SetToken(s.Auth.ClientToken)
	select {
	case <-k.newSecret: // replaced by the newer one
	default:
	}
	k.newSecret <- s
	return s, nil
}

// maintain keeps the token alive until ctx ends: a LifetimeWatcher renews
// it (POST /v1/auth/token/renew-self) for as long as Vault extends it; when
// the watcher gives up — max TTL reached, token not renewable, renewal
// refused or failing — maintain logs in again, retrying with backoff while
// Vault is unreachable. A login made by a request that met an invalid token
// restarts the watcher on the new token.
func (k *VaultTransitKEK) maintain(ctx context.Context, secret *api.Secret) {
	defer close(k.done)
	wait := time.Duration(0)
	for {
		w, done := k.watch(secret)
		select {
		case <-ctx.Done():
			stopWatcher(w)
			return
		case s := <-k.newSecret:
			stopWatcher(w)
			secret, wait = s, 0
		case <-done:
			old := secret.Auth.ClientToken
			for {
				if !sleepCtx(ctx, wait) {
					return
				}
				wait = min(max(2*wait, minReloginWait), maxReloginWait)
				if _, err := k.login(ctx, ""); err != nil {
					continue
				}
				// login handed its secret over, and a login made meanwhile by
				// a request replaced it: the channel holds the newest.
				secret = <-k.newSecret
				if secret.Auth.ClientToken != old {
					// A new token: no reason to hold back the next re-login.
					// The same token (static, or kept by Vault Agent) is watched
					// again after the wait, not in a tight loop.
					wait = 0
				}
				break
			}
		}
	}
}

// watch starts a LifetimeWatcher on s, or returns nil (and a nil channel,
// which never fires) for a token that never expires.
func (k *VaultTransitKEK) watch(s *api.Secret) (*api.LifetimeWatcher, <-chan error) {
	if s == nil || s.Auth == nil || s.Auth.LeaseDuration <= 0 {
		return nil, nil
	}
	w, err := k.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s})
	if err != nil {
		return nil, nil
	}
	go w.Start()
	return w, w.DoneCh()
}

// stopWatcher stops w and waits until its goroutine has ended.
func stopWatcher(w *api.LifetimeWatcher) {
	if w == nil {
		return
	}
	w.Stop()
	<-w.DoneCh()
}

// sleepCtx waits d, or less if ctx ends first; it reports whether ctx is
// still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
