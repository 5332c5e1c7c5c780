package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
)

// adminFlags are the flags every admin command (keys …, policy …) shares.
type adminFlags struct {
	config  string
	json    bool
	policy  string
	service string
}

func (f *adminFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.config, "config", "", "configuration `FILE` (the one fleproxy serve reads); its encryption section is used")
	pf.BoolVar(&f.json, "json", false, "print JSON instead of text")
	pf.StringVar(&f.policy, "policy", "", "policy `FILE`, instead of the configuration's encryption.policy")
	pf.StringVar(&f.service, "upstream", "", "connection string of the protected database (e.g. postgres://fleproxy@db:5432/app), instead of encryption.service")
}

// encryption returns the encryption section of the --config file (or of the defaults, with
// --policy and --upstream), which every admin command needs.
func (f *adminFlags) encryption() (config.Encryption, error) {
	if f.config == "" && (f.policy == "" || f.service == "") {
		return config.Encryption{}, errors.New("--config is required (or both --policy and --upstream): the configuration file whose encryption section names the policy, the service connection and the keys")
	}
	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return config.Encryption{}, err
		}
	}
	if f.policy != "" {
		cfg.Encryption.Policy = f.policy
	}
	if f.service != "" {
		cfg.Encryption.Service = f.service
	}
	if cfg.Encryption.Policy == "" {
		return config.Encryption{}, fmt.Errorf("config %s: encryption.policy is not set: nothing is encrypted, so there are no keys or policy to manage", f.config)
	}
	return cfg.Encryption, nil
}

// writeJSON prints v indented, for --json.
func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// keyID formats a Tink key ID as the keys package does in its messages.
func keyID(id uint32) string { return fmt.Sprintf("%08x", id) }

func newKeysCommand() *cobra.Command {
	var flags adminFlags
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the key-encryption key and the keyrings of data keys",
		Long: `Manage fleproxy's keys: the key-encryption key (KEK) named by encryption.kek_file and one
keyring of data keys per key name in the policy, stored wrapped by the KEK in encryption.key_store.

No command prints key material.`,
		Args: cobra.NoArgs,
	}
	flags.register(cmd)
	cmd.AddCommand(newKeysInitCommand(&flags), newKeysListCommand(&flags), newKeysRotateCommand(&flags), newKeysReencryptCommand(&flags),
		newKeysRewrapCommand(&flags), newKeysRetireCommand(&flags), newKeysEnableCommand(&flags), newKeysDestroyCommand(&flags))
	return cmd
}

func newKeysInitCommand(flags *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the local KEK, the key store and a keyring for every key the policy uses",
		Long: `Create what encryption needs, leaving whatever exists in place (running it again changes nothing):

  - the local KEK file at encryption.kek_file, if it does not exist. It is for DEVELOPMENT ONLY:
    the key sits in clear in that file, so whoever can read it can decrypt everything;
  - the key store (table fleproxy.keyrings for key_store "database");
  - a keyring for every key name the policy uses that has none yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			rep, err := runKeysInit(cmd.Context(), e)
			if err != nil {
				return err
			}
			if flags.json {
				if rep.KEK.Created {
					fmt.Fprintln(cmd.ErrOrStderr(), localKEKWarning(rep.KEK.File))
				}
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return rep.print(cmd.OutOrStdout())
		},
	}
}

func newKeysListCommand(flags *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Describe every keyring: kind, KEK, primary key, keys and their status",
		Long: `Describe every keyring in the key store without unwrapping anything, so it works even when the
KEK is unavailable. Keys the policy uses that have no keyring are listed too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			rep, err := runKeysList(cmd.Context(), e, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return rep.print(cmd.OutOrStdout())
		},
	}
}

func newKeysRotateCommand(flags *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate NAME",
		Short: "Add a new primary data key to keyring NAME",
		Long: `Add a fresh data key to keyring NAME and make it the primary: new values are encrypted with it,
values under older keys keep decrypting. Running proxies pick the new key up within
encryption.refresh_interval, without a restart.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			rep, err := runKeysRotate(cmd.Context(), e, args[0])
			if err != nil {
				return err
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return rep.print(cmd.OutOrStdout())
		},
	}
}

// keyStore is the configured store of wrapped keyrings, with the service connection it uses.
type keyStore struct {
	store keys.Store
	pg    *keys.PostgresStore // set for key_store "database"
	pool  *pgxpool.Pool       // set for key_store "database"
	desc  string              // where the keyrings are, for messages
}

// openStore opens the configured key store; only key_store "database" connects to the database.
func openStore(ctx context.Context, e config.Encryption) (*keyStore, error) {
	if dir, ok := strings.CutPrefix(e.KeyStore, "dir:"); ok {
		s, err := openKeyStore(e, nil)
		if err != nil {
			return nil, fmt.Errorf("encryption.key_store: %w", err)
		}
		return &keyStore{store: s, desc: "directory " + dir}, nil
	}
	pool, db, err := openService(ctx, e)
	if err != nil {
		return nil, err
	}
	pg := keys.NewPostgresStore(pool)
	return &keyStore{store: pg, pg: pg, pool: pool, desc: fmt.Sprintf("table fleproxy.keyrings in database %q", db)}, nil
}

func (s *keyStore) close() {
	if s.pool != nil {
		s.pool.Close()
	}
}

// explain adds the remedy to a store error that means the store was never initialised.
func (s *keyStore) explain(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: no fleproxy.keyrings yet
		return fmt.Errorf("key store %s does not exist; create it with `fleproxy keys init`: %w", s.desc, err)
	}
	return err
}

// kindFor returns the keyring kind that encrypts columns of mode m.
func kindFor(m policy.Mode) (keys.Kind, error) {
	switch m {
	case policy.ModeRandomized:
		return keys.KindAEAD, nil
	default:
		return "", fmt.Errorf("no keyring kind for mode %q", m)
	}
}

// policyKeys returns the key names pol uses, sorted, with the keyring kind each needs.
func policyKeys(pol *policy.Policy) ([]string, map[string]keys.Kind, error) {
	kinds := make(map[string]keys.Kind)
	var names []string
	for _, c := range pol.Columns() {
		k, err := kindFor(c.Mode)
		if err != nil {
			return nil, nil, fmt.Errorf("policy %s: column %s: %w", pol.Source(), c.Name, err)
		}
		if prev, ok := kinds[c.Key]; ok {
			if prev != k {
				return nil, nil, fmt.Errorf("policy %s: key %q is used for %s and %s keyrings; use one key name per kind", pol.Source(), c.Key, prev, k)
			}
			continue
		}
		kinds[c.Key] = k
		names = append(names, c.Key)
	}
	slices.Sort(names)
	return names, kinds, nil
}

// localKEKWarning is said whenever a local KEK file is created.
func localKEKWarning(file string) string {
	return fmt.Sprintf("WARNING: %s is a local KEK for DEVELOPMENT ONLY; never use it in production. The key sits in clear in that file: whoever reads it (or a backup of it) can decrypt every protected value.", file)
}

// openOrInitLocalKEK opens the local KEK at path, or creates it if the file does not exist and
// the store holds no keyring (a new KEK could not unwrap those).
func openOrInitLocalKEK(ctx context.Context, path string, store keys.Store) (kek *keys.LocalKEK, created bool, err error) {
	kek, err = keys.OpenLocalKEK(path)
	if err == nil {
		return kek, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("encryption.kek_file: %w", err)
	}
	recs, err := store.List(ctx)
	if err != nil {
		return nil, false, err
	}
	if len(recs) > 0 {
		return nil, false, fmt.Errorf("encryption.kek_file %s does not exist, but the key store already holds %d keyring(s) wrapped by KEK %s: restore that KEK file instead (a new KEK cannot unwrap them)", path, len(recs), recs[0].KEKID)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("encryption.kek_file: %w", err)
	}
	kek, err = keys.InitLocalKEK(path)
	if errors.Is(err, fs.ErrExist) {
		// Another `keys init` created it between our open and our create.
		kek, err = keys.OpenLocalKEK(path)
		if err != nil {
			return nil, false, fmt.Errorf("encryption.kek_file: %w", err)
		}
		return kek, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("encryption.kek_file: %w", err)
	}
	return kek, true, nil
}

// keysInitReport is what `keys init` did.
type keysInitReport struct {
	KEK      kekReport       `json:"kek"`
	Store    string          `json:"store"`
	Keyrings []keyringResult `json:"keyrings"`
	Created  int             `json:"created"`
}

// kekReport describes the KEK; the ID names the key and is not secret.
type kekReport struct {
	File            string `json:"file"`
	ID              string `json:"id"`
	Created         bool   `json:"created"`
	DevelopmentOnly bool   `json:"development_only"`
}

// keyringResult is one keyring that `keys init` made sure of.
type keyringResult struct {
	Name         string `json:"name"`
	Kind         string `json:"kind"`
	Created      bool   `json:"created"`
	PrimaryKeyID uint32 `json:"primary_key_id"`
	Version      int64  `json:"version"`
}

// initKeys is `fleproxy keys init` for e: it creates the local KEK file if needed, the key store,
// and a keyring for every key name of the policy that has none, and describes what it did on out.
// Running it again creates nothing.
func initKeys(ctx context.Context, e config.Encryption, out io.Writer) error {
	rep, err := runKeysInit(ctx, e)
	if err != nil {
		return err
	}
	return rep.print(out)
}

// runKeysInit does the work of initKeys and reports it.
func runKeysInit(ctx context.Context, e config.Encryption) (*keysInitReport, error) {
	pol, err := policy.Load(e.Policy)
	if err != nil {
		return nil, err
	}
	names, kinds, err := policyKeys(pol)
	if err != nil {
		return nil, err
	}
	ks, err := openStore(ctx, e)
	if err != nil {
		return nil, err
	}
	defer ks.close()
	if ks.pg != nil {
		if err := ks.pg.EnsureSchema(ctx); err != nil {
			return nil, fmt.Errorf("key store %s: %w", ks.desc, err)
		}
	}
	var kek keys.KEK
	rep := &keysInitReport{Store: ks.desc, Keyrings: []keyringResult{}}
	if e.Vault != nil {
		// The KEK lives in Vault, created by the key admin there; nothing to make here.
		if kek, err = openKEK(ctx, e); err != nil {
			return nil, err
		}
		rep.KEK = kekReport{ID: kek.ID()}
	} else {
		local, created, err := openOrInitLocalKEK(ctx, e.KEKFile, ks.store)
		if err != nil {
			return nil, err
		}
		kek = local
		rep.KEK = kekReport{File: e.KEKFile, ID: local.ID(), Created: created, DevelopmentOnly: true}
	}
	// A KEK that cannot unwrap the keyrings already stored must not add new ones beside them.
	existing, err := ks.store.List(ctx)
	if err != nil {
		return nil, ks.explain(err)
	}
	for _, r := range existing {
		if r.KEKID != kek.ID() {
			return nil, fmt.Errorf("keyring %q is wrapped by KEK %s, but the configured KEK is %s: nothing was created (configure the KEK that wrapped the existing keyrings)", r.Name, r.KEKID, kek.ID())
		}
	}
	m := keys.NewManager(kek, ks.store)
	for _, name := range names {
		res, err := ensureKeyring(ctx, m, name, kinds[name])
		if err != nil {
			return nil, err
		}
		if res.Created {
			rep.Created++
		}
		rep.Keyrings = append(rep.Keyrings, res)
	}
	return rep, nil
}

// ensureKeyring creates keyring name of kind k unless it exists. An existing keyring is unwrapped,
// which proves that the configured KEK can read it.
func ensureKeyring(ctx context.Context, m *keys.Manager, name string, k keys.Kind) (keyringResult, error) {
	kr, err := m.Keyring(ctx, name)
	created := false
	if errors.Is(err, keys.ErrNotFound) {
		kr, err = m.Create(ctx, name, k)
		created = err == nil
		if errors.Is(err, keys.ErrExists) { // created concurrently by another `keys init`
			kr, err = m.Keyring(ctx, name)
		}
	}
	if err != nil {
		return keyringResult{}, fmt.Errorf("keyring %q: %w", name, err)
	}
	if kr.Kind() != k {
		return keyringResult{}, fmt.Errorf("keyring %q holds %s keys, but the policy needs %s keys for it", name, kr.Kind(), k)
	}
	return keyringResult{Name: name, Kind: string(kr.Kind()), Created: created, PrimaryKeyID: kr.PrimaryKeyID(), Version: kr.Version()}, nil
}

func (r *keysInitReport) print(out io.Writer) error {
	switch {
	case !r.KEK.DevelopmentOnly:
		fmt.Fprintf(out, "KEK: %s\n", r.KEK.ID)
	case r.KEK.Created:
		fmt.Fprintf(out, "KEK: created %s (%s)\n", r.KEK.File, r.KEK.ID)
	default:
		fmt.Fprintf(out, "KEK: using existing %s (%s)\n", r.KEK.File, r.KEK.ID)
	}
	if r.KEK.DevelopmentOnly {
		fmt.Fprintln(out, localKEKWarning(r.KEK.File))
	}
	fmt.Fprintf(out, "Key store: %s\n", r.Store)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEYRING\tKIND\tSTATUS\tPRIMARY KEY")
	for _, k := range r.Keyrings {
		status := "already present"
		if k.Created {
			status = "created"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.Kind, status, keyID(k.PrimaryKeyID))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	if r.Created == 0 {
		_, err = fmt.Fprintln(out, "Nothing to do: every key the policy uses already has a keyring.")
	} else {
		_, err = fmt.Fprintf(out, "Created %d keyring(s); %d already present.\n", r.Created, len(r.Keyrings)-r.Created)
	}
	return err
}

// absentKEK stands in for a KEK that cannot be opened, so that listing, which unwraps nothing,
// still works.
type absentKEK struct{ err error }

func (k absentKEK) Wrap(context.Context, []byte, []byte) ([]byte, error)   { return nil, k.err }
func (k absentKEK) Unwrap(context.Context, []byte, []byte) ([]byte, error) { return nil, k.err }
func (k absentKEK) ID() string                                             { return "" }

// keysListReport is what `keys list` shows.
type keysListReport struct {
	Store string `json:"store"`
	// ConfiguredKEKID is the ID of the KEK in encryption.kek_file, or "" if it cannot be opened.
	ConfiguredKEKID string        `json:"configured_kek_id"`
	Keyrings        []keyringJSON `json:"keyrings"`
	// Missing lists key names the policy uses that have no keyring.
	Missing []string `json:"missing"`
}

// keyringJSON describes a keyring without secrets.
type keyringJSON struct {
	Name         string    `json:"name"`
	Kind         string    `json:"kind"`
	KEKID        string    `json:"kek_id"`
	PrimaryKeyID uint32    `json:"primary_key_id"`
	Version      int64     `json:"version"`
	UpdatedAt    time.Time `json:"updated_at"`
	Keys         []keyJSON `json:"keys"`
}

// keyJSON describes one data key without its material.
type keyJSON struct {
	ID      uint32    `json:"id"`
	Primary bool      `json:"primary"`
	Status  string    `json:"status"`
	Created time.Time `json:"created"`
}

// runKeysList describes the keyrings in the store. Problems that do not prevent listing (no KEK,
// an unreadable policy) are noted on warn.
func runKeysList(ctx context.Context, e config.Encryption, warn io.Writer) (*keysListReport, error) {
	ks, err := openStore(ctx, e)
	if err != nil {
		return nil, err
	}
	defer ks.close()
	rep := &keysListReport{Store: ks.desc, Keyrings: []keyringJSON{}, Missing: []string{}}
	var kek keys.KEK
	if k, err := openKEK(ctx, e); err != nil {
		fmt.Fprintf(warn, "note: %v; listing without it\n", err)
		kek = absentKEK{err: err}
	} else {
		kek, rep.ConfiguredKEKID = k, k.ID()
	}
	infos, err := keys.NewManager(kek, ks.store).List(ctx)
	if err != nil {
		return nil, ks.explain(err)
	}
	present := make(map[string]bool, len(infos))
	for _, in := range infos {
		present[in.Name] = true
		kj := keyringJSON{
			Name: in.Name, Kind: string(in.Kind), KEKID: in.KEKID, PrimaryKeyID: in.PrimaryKeyID,
			Version: in.Version, UpdatedAt: in.UpdatedAt, Keys: make([]keyJSON, 0, len(in.Keys)),
		}
		for _, k := range in.Keys {
			kj.Keys = append(kj.Keys, keyJSON{ID: k.ID, Primary: k.Primary, Status: string(k.Status), Created: k.Created})
		}
		rep.Keyrings = append(rep.Keyrings, kj)
	}
	if pol, err := policy.Load(e.Policy); err != nil {
		fmt.Fprintf(warn, "note: cannot tell which policy keys lack a keyring: %v\n", err)
	} else if names, _, err := policyKeys(pol); err == nil {
		for _, n := range names {
			if !present[n] {
				rep.Missing = append(rep.Missing, n)
			}
		}
	}
	return rep, nil
}

func (r *keysListReport) print(out io.Writer) error {
	fmt.Fprintf(out, "Key store: %s\n", r.Store)
	if r.ConfiguredKEKID != "" {
		fmt.Fprintf(out, "Configured KEK: %s\n", r.ConfiguredKEKID)
	} else {
		fmt.Fprintln(out, "Configured KEK: unavailable")
	}
	if len(r.Keyrings) == 0 {
		fmt.Fprintln(out, "\nNo keyrings yet; create them with `fleproxy keys init`.")
	}
	for _, k := range r.Keyrings {
		fmt.Fprintf(out, "\nKeyring %s: kind %s, KEK %s, primary key %s, version %d, updated %s\n",
			k.Name, k.Kind, k.KEKID, keyID(k.PrimaryKeyID), k.Version, k.UpdatedAt.UTC().Format(time.RFC3339))
		if r.ConfiguredKEKID != "" && k.KEKID != r.ConfiguredKEKID {
			fmt.Fprintf(out, "  WARNING: wrapped by KEK %s, but the configured KEK is %s: this keyring cannot be unwrapped\n", k.KEKID, r.ConfiguredKEKID)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  KEY ID\tSTATUS\tCREATED\t")
		for _, key := range k.Keys {
			created, primary := "unknown", ""
			if !key.Created.IsZero() {
				created = key.Created.UTC().Format(time.RFC3339)
			}
			if key.Primary {
				primary = "primary"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", keyID(key.ID), key.Status, created, primary)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(out, "\nThe policy uses keys that have no keyring: %s; create them with `fleproxy keys init`.\n", strings.Join(r.Missing, ", "))
	}
	return nil
}

// keysRotateReport is what `keys rotate` did.
type keysRotateReport struct {
	Name            string `json:"name"`
	OldPrimaryKeyID uint32 `json:"old_primary_key_id"`
	NewPrimaryKeyID uint32 `json:"new_primary_key_id"`
	Version         int64  `json:"version"`
	// RefreshInterval is encryption.refresh_interval, e.g. "30s".
	RefreshInterval string `json:"refresh_interval"`
}

// runKeysRotate adds a new primary key to keyring name.
func runKeysRotate(ctx context.Context, e config.Encryption, name string) (*keysRotateReport, error) {
	kek, err := openKEK(ctx, e)
	if err != nil {
		return nil, err
	}
	ks, err := openStore(ctx, e)
	if err != nil {
		return nil, err
	}
	defer ks.close()
	m := keys.NewManager(kek, ks.store)
	old, err := m.Keyring(ctx, name)
	if errors.Is(err, keys.ErrNotFound) {
		return nil, fmt.Errorf("no keyring %q in %s (`fleproxy keys list` shows those there are): %w", name, ks.desc, err)
	}
	if err != nil {
		return nil, ks.explain(fmt.Errorf("keyring %q: %w", name, err))
	}
	kr, err := m.Rotate(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("rotate keyring %q: %w", name, err)
	}
	return &keysRotateReport{
		Name: name, OldPrimaryKeyID: old.PrimaryKeyID(), NewPrimaryKeyID: kr.PrimaryKeyID(), Version: kr.Version(),
		RefreshInterval: e.RefreshInterval.String(),
	}, nil
}

func (r *keysRotateReport) print(out io.Writer) error {
	_, err := fmt.Fprintf(out, `Rotated keyring %s: primary key %s -> %s (version %d).
New values are encrypted with key %s; values under older keys keep decrypting.
Running proxies pick the new primary up within encryption.refresh_interval (%s), without a restart.
`, r.Name, keyID(r.OldPrimaryKeyID), keyID(r.NewPrimaryKeyID), r.Version, keyID(r.NewPrimaryKeyID), r.RefreshInterval)
	return err
}
