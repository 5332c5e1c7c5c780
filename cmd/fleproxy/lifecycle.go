package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/fleproxy/fleproxy/config"
	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/keys"
	"github.com/fleproxy/fleproxy/policy"
)

// This file holds the key life cycle beyond init, list, rotate and reencrypt: `keys rewrap`
// after a KEK rotation in Vault, `keys retire` and `keys enable` for single data keys, and
// `keys destroy` for crypto-shredding a keyring.

func newKeysRewrapCommand(flags *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rewrap",
		Short: "Wrap every keyring again with the latest version of the KEK (after rotating the Transit key)",
		Long: `Wrap every keyring of the key store again with the latest version of the key-encryption key. With
Vault (encryption.vault) this is Transit's rewrap, done inside Vault: the data keys never leave it
for this. Run it after rotating the Transit key (vault write -f transit/keys/KEY/rotate); it prints,
for each keyring, the Transit key version that wrapped it before and after, and once every keyring
is on the latest version, the min_decryption_version that is then safe to set in Vault.

The data keys do not change, so no value needs re-encrypting. A keyring already on the latest
version is left as it is: running the command again changes nothing. Each new wrapping is checked
to unwrap before it replaces the stored one (the Vault token needs decrypt as well as rewrap), and
replacements are compare-and-swap, so concurrent rotations are kept. Running proxies re-read the
rewrapped keyrings within encryption.refresh_interval and keep serving meanwhile.

With the local development KEK (encryption.kek_file), which has no versions, each keyring is
unwrapped and wrapped again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			rep, err := runKeysRewrap(cmd.Context(), e, cmd.ErrOrStderr())
			return emitReport(flags, cmd.OutOrStdout(), rep, err)
		},
	}
}

func newKeysRetireCommand(flags *adminFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "retire NAME --key-id ID",
		Short: "Disable an old data key of keyring NAME once no stored value uses it",
		Long: `Disable data key ID of keyring NAME: it then neither encrypts nor decrypts. The key stays in the
keyset, disabled (` + "`fleproxy keys enable`" + ` undoes this); running proxies stop using it within
encryption.refresh_interval.

First, every protected column whose policy entry uses keyring NAME is scanned through
encryption.service, reading only the data key ID each stored envelope carries (nothing is
decrypted). If any row still holds a value under the key, the command refuses and says how many:
run ` + "`fleproxy keys reencrypt --key NAME`" + ` first. It also refuses the primary key (rotate first)
and a key that stopped being the primary less than encryption.refresh_interval ago, since a proxy
that has not refreshed yet may still encrypt with it.

ID is the key ID as ` + "`fleproxy keys list`" + ` prints it: 8 hexadecimal digits.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kid, err := parseKeyID(id)
			if err != nil {
				return err
			}
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			rep, err := runKeysRetire(cmd.Context(), e, args[0], kid)
			return emitReport(flags, cmd.OutOrStdout(), rep, err)
		},
	}
	cmd.Flags().StringVar(&id, "key-id", "", "the data key `ID` to retire, 8 hex digits as `fleproxy keys list` prints it")
	_ = cmd.MarkFlagRequired("key-id")
	return cmd
}

func newKeysEnableCommand(flags *adminFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "enable NAME --key-id ID",
		Short: "Enable a retired data key of keyring NAME again",
		Long: `Enable data key ID of keyring NAME again after ` + "`fleproxy keys retire`" + `, so that values under it
decrypt again (for instance rows restored from a backup). It does not become the primary. Running
proxies pick the change up within encryption.refresh_interval.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kid, err := parseKeyID(id)
			if err != nil {
				return err
			}
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			rep, err := runKeysEnable(cmd.Context(), e, args[0], kid)
			if err != nil {
				return err
			}
			if flags.json {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Enabled key %s of keyring %s: values under it decrypt again (new values still use the primary key).\nRunning proxies pick the change up within encryption.refresh_interval (%s).\n",
				keyID(rep.KeyID), rep.Name, rep.RefreshInterval)
			return err
		},
	}
	cmd.Flags().StringVar(&id, "key-id", "", "the data key `ID` to enable, 8 hex digits as `fleproxy keys list` prints it")
	_ = cmd.MarkFlagRequired("key-id")
	return cmd
}

func newKeysDestroyCommand(flags *adminFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "destroy NAME [--yes]",
		Short: "Delete keyring NAME for good (crypto-shredding): every value under it becomes unrecoverable",
		Long: `Delete keyring NAME from the key store: crypto-shredding. Every value encrypted under its data keys
becomes unrecoverable, for every proxy and every copy of the data (replicas, backups, dumps).

The command first prints what becomes unrecoverable: the protected columns whose policy entry uses
keyring NAME, with the number of values under its keys (read from the key ID each envelope
carries, through encryption.service). Without --yes it then asks you to type NAME on a terminal,
and refuses when standard input is not one.

Running proxies drop the keyring within encryption.refresh_interval: reads of those columns then
fail with SQLSTATE XX001 naming the column, and writes to them fail. Take the columns out of the
policy afterwards (a proxy does not start with a policy that names a missing keyring). Copies of the
wrapped keyring in backups of the key store can still be unwrapped by the KEK: they expire with the
backups, or, with Vault, rotate the Transit key, run ` + "`fleproxy keys rewrap`" + ` and raise
min_decryption_version to make them useless. Destroying needs no KEK.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := flags.encryption()
			if err != nil {
				return err
			}
			name := args[0]
			out := cmd.OutOrStdout()
			confirm := func(rep *keysDestroyReport) error {
				planOut := out
				if flags.json {
					// The plan still goes to the person asked to confirm it.
					planOut = io.Discard
					if !yes {
						planOut = cmd.ErrOrStderr()
					}
				}
				if err := rep.printPlan(planOut); err != nil {
					return err
				}
				if yes {
					return nil
				}
				in := cmd.InOrStdin()
				return confirmDestroy(in, isTerminal(in), cmd.ErrOrStderr(), name)
			}
			rep, err := runKeysDestroy(cmd.Context(), e, name, confirm)
			if err != nil {
				return err
			}
			if flags.json {
				return writeJSON(out, rep)
			}
			return rep.printDone(out)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "destroy without asking to type the keyring name")
	return cmd
}

// parseKeyID reads a data key ID as the key commands print it: 8 hex digits (a 0x prefix is
// accepted).
func parseKeyID(s string) (uint32, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if h == "" || len(h) > 8 {
		return 0, fmt.Errorf("--key-id %q: want the key ID as `fleproxy keys list` prints it, 8 hexadecimal digits", s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("--key-id %q: want the key ID as `fleproxy keys list` prints it, 8 hexadecimal digits", s)
	}
	return uint32(v), nil
}

// keyAdmin is what the life-cycle commands work on: the key store, the KEK (when the command
// needs it) and a Manager over both.
type keyAdmin struct {
	ks  *keyStore
	kek keys.KEK
	m   *keys.Manager
}

// openKeyAdmin opens the key store and, with needKEK, the configured KEK (Vault or the local
// file); without, the Manager gets a KEK that refuses every use.
func openKeyAdmin(ctx context.Context, e config.Encryption, needKEK bool) (*keyAdmin, error) {
	ks, err := openStore(ctx, e)
	if err != nil {
		return nil, err
	}
	var kek keys.KEK = absentKEK{err: errors.New("keys: this command does not use the KEK")}
	if needKEK {
		if kek, err = openKEK(ctx, e); err != nil {
			ks.close()
			return nil, err
		}
	}
	return &keyAdmin{ks: ks, kek: kek, m: keys.NewManager(kek, ks.store)}, nil
}

// close ends the KEK's token renewal (Vault) and closes the store's connections.
func (a *keyAdmin) close() {
	if c, ok := a.kek.(io.Closer); ok {
		c.Close()
	}
	a.ks.close()
}

// noKeyring explains a keyring that is not in the store.
func (a *keyAdmin) noKeyring(name string, err error) error {
	if errors.Is(err, keys.ErrNotFound) {
		return fmt.Errorf("no keyring %q in %s (`fleproxy keys list` shows those there are): %w", name, a.ks.desc, err)
	}
	return a.ks.explain(fmt.Errorf("keyring %q: %w", name, err))
}

// service returns a pool on encryption.service for scanning columns: the store's own for
// key_store "database", else a new one, closed with the returned function.
func (a *keyAdmin) service(ctx context.Context, e config.Encryption) (*pgxpool.Pool, func(), error) {
	if a.ks.pool != nil {
		return a.ks.pool, func() {}, nil
	}
	pool, _, err := openService(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	return pool, pool.Close, nil
}

// keysRewrapReport is what `keys rewrap` did.
type keysRewrapReport struct {
	Store string `json:"store"`
	KEKID string `json:"kek_id"`
	// Versioned is true for a KEK with versions (Vault Transit).
	Versioned bool `json:"versioned"`
	// VaultKey describes the Transit key as Vault reads it after the rewrap, if the token may
	// read it.
	VaultKey *vaultKeyJSON `json:"vault_key,omitempty"`
	Keyrings []rewrapJSON  `json:"keyrings"`
	// SafeMinDecryptionVersion is the highest min_decryption_version that leaves every keyring of
	// this store readable; 0 when there is none to raise or a keyring failed.
	SafeMinDecryptionVersion int    `json:"safe_min_decryption_version"`
	RefreshInterval          string `json:"refresh_interval"`
}

// vaultKeyJSON describes the Transit key without secrets.
type vaultKeyJSON struct {
	Mount                string `json:"mount"`
	Name                 string `json:"name"`
	LatestVersion        int    `json:"latest_version"`
	MinDecryptionVersion int    `json:"min_decryption_version"`
}

// rewrapJSON is the rewrap of one keyring.
type rewrapJSON struct {
	Name             string `json:"name"`
	KEKVersionBefore int    `json:"kek_version_before"`
	KEKVersionAfter  int    `json:"kek_version_after"`
	Rewrapped        bool   `json:"rewrapped"`
	Version          int64  `json:"version"`
	Error            string `json:"error,omitempty"`
}

// runKeysRewrap rewraps every keyring of the store with the KEK's latest version. The report is
// returned whenever the store could be listed, also with the error of keyrings that failed.
func runKeysRewrap(ctx context.Context, e config.Encryption, warn io.Writer) (*keysRewrapReport, error) {
	a, err := openKeyAdmin(ctx, e, true)
	if err != nil {
		return nil, err
	}
	defer a.close()
	res, rerr := a.m.Rewrap(ctx)
	if res == nil {
		return nil, a.ks.explain(rerr)
	}
	rep := &keysRewrapReport{
		Store: a.ks.desc, KEKID: res.KEKID, Versioned: res.Versioned, Keyrings: []rewrapJSON{},
		SafeMinDecryptionVersion: res.MinVersion(), RefreshInterval: e.RefreshInterval.String(),
	}
	for _, k := range res.Keyrings {
		rj := rewrapJSON{Name: k.Name, KEKVersionBefore: k.Before, KEKVersionAfter: k.After, Rewrapped: k.Rewrapped, Version: k.Version}
		if k.Err != nil {
			rj.Error = k.Err.Error()
		}
		rep.Keyrings = append(rep.Keyrings, rj)
	}
	if vk, ok := a.kek.(*keys.VaultTransitKEK); ok && e.Vault != nil {
		info, err := vk.KeyInfo(ctx)
		if err != nil {
			fmt.Fprintf(warn, "note: cannot read the Transit key's versions (the token needs read on %s/keys/%s): %v\n", e.Vault.Mount, e.Vault.Key, err)
		} else {
			rep.VaultKey = &vaultKeyJSON{Mount: e.Vault.Mount, Name: info.Name, LatestVersion: info.LatestVersion, MinDecryptionVersion: info.MinDecryptionVersion}
		}
	}
	if rerr != nil {
		return rep, fmt.Errorf("rewrap: %w", rerr)
	}
	return rep, nil
}

func (r *keysRewrapReport) print(out io.Writer) error {
	fmt.Fprintf(out, "KEK: %s", r.KEKID)
	if v := r.VaultKey; v != nil {
		fmt.Fprintf(out, " (Transit key %s/%s: latest version %d, min_decryption_version %d)", v.Mount, v.Name, v.LatestVersion, v.MinDecryptionVersion)
	}
	fmt.Fprintf(out, "\nKey store: %s\n", r.Store)
	if len(r.Keyrings) == 0 {
		_, err := fmt.Fprintln(out, "No keyrings to rewrap.")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if r.Versioned {
		fmt.Fprintln(tw, "KEYRING\tKEK VERSION\tRESULT")
	} else {
		fmt.Fprintln(tw, "KEYRING\tRESULT")
	}
	for _, k := range r.Keyrings {
		result := "already wrapped by the latest version"
		switch {
		case k.Error != "":
			result = "FAILED: " + k.Error
		case k.Rewrapped:
			result = fmt.Sprintf("rewrapped (store version %d)", k.Version)
		}
		if r.Versioned {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, versionChange(k.KEKVersionBefore, k.KEKVersionAfter), result)
		} else {
			fmt.Fprintf(tw, "%s\t%s\n", k.Name, result)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	switch {
	case !r.Versioned:
		_, err = fmt.Fprintf(out, "KEK %s has no versions: each keyring was unwrapped and wrapped again; there is no min_decryption_version to raise.\n", r.KEKID)
	case r.SafeMinDecryptionVersion == 0:
		_, err = fmt.Fprintln(out, "Some keyrings were not rewrapped: do NOT raise min_decryption_version in Vault until a rewrap succeeds for every keyring, or they can no longer be unwrapped.")
	default:
		n := r.SafeMinDecryptionVersion
		fmt.Fprintf(out, "Every keyring in this store is now wrapped by version %d or later of the Transit key.\n", n)
		if v := r.VaultKey; v != nil && v.MinDecryptionVersion >= n {
			fmt.Fprintf(out, "Vault's min_decryption_version is already %d.\n", v.MinDecryptionVersion)
		} else {
			mount, key := "transit", "KEY"
			if v := r.VaultKey; v != nil {
				mount, key = v.Mount, v.Name
			}
			fmt.Fprintf(out, "It is now safe to raise min_decryption_version to %d (first rewrap every other key store that uses this Transit key):\n    vault write %s/keys/%s/config min_decryption_version=%d\n", n, mount, key, n)
		}
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "Running proxies re-read the rewrapped keyrings within encryption.refresh_interval (%s); they keep serving meanwhile.\n", r.RefreshInterval)
	return err
}

func versionChange(before, after int) string {
	if before == 0 && after == 0 {
		return "-"
	}
	if after == 0 {
		return fmt.Sprintf("%d -> ?", before)
	}
	return fmt.Sprintf("%d -> %d", before, after)
}

// keyUse is how the stored values of one protected column spread over data keys, read from the
// key ID every envelope carries (docs/ciphertext.md) without decrypting anything.
type keyUse struct {
	Column string `json:"column"`
	// TableMissing is set when the column's table does not exist (allow_missing_tables).
	TableMissing bool `json:"table_missing,omitempty"`
	// ByKey counts the values under each data key, by key ID.
	ByKey []keyCount `json:"by_key"`
	// NotCiphertext counts non-NULL values that are not fleproxy envelopes (plaintext not yet
	// encrypted by `fleproxy migrate encrypt`).
	NotCiphertext int64 `json:"not_ciphertext"`
}

// keyCount is the number of values under one data key.
type keyCount struct {
	KeyID uint32 `json:"key_id"`
	Rows  int64  `json:"rows"`
}

// rows returns how many values are under the keys for which under returns true.
func (u keyUse) rows(under func(uint32) bool) int64 {
	var n int64
	for _, k := range u.ByKey {
		if under(k.KeyID) {
			n += k.Rows
		}
	}
	return n
}

// tinkPrefixTink is the first byte of Tink's TINK output prefix, byte 5 of every envelope
// (docs/ciphertext.md; https://developers.google.com/tink/wire-format#tink_output_prefix).
const tinkPrefixTink = 0x01

// scanKeyUse counts col's values by the data key their envelope names, in one pass of the table
// that aggregates in the database and transfers only the counts. It reads the first 10 bytes
// of each envelope, the header and the Tink prefix (for text storage, the first 16 characters
// after "fle1:", which decode to 12 bytes): the key ID is bytes 6 to 9.
func scanKeyUse(ctx context.Context, db *pgxpool.Pool, col *policy.Column) (keyUse, error) {
	use := keyUse{Column: col.Name.String(), ByKey: []keyCount{}}
	table := pgx.Identifier{col.Name.Schema, col.Name.Table}.Sanitize()
	var exists bool
	if err := db.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return use, fmt.Errorf("column %s: %w", use.Column, err)
	}
	if !exists {
		use.TableMissing = true
		return use, nil
	}
	c := pgx.Identifier{col.Name.Column}.Sanitize()
	var prefix string
	switch col.Storage {
	case policy.StorageText:
		prefix = fmt.Sprintf(`CASE WHEN %[1]s ~ '^%[2]s[A-Za-z0-9_-]{16}' THEN substring(decode(translate(substring(%[1]s from %[3]d for 16), '-_', '+/'), 'base64') from 1 for 10) END`,
			c, envelope.ArmorPrefix, len(envelope.ArmorPrefix)+1)
	default:
		prefix = fmt.Sprintf("substring(%s from 1 for 10)", c)
	}
	mode, err := envelopeMode(col.Mode)
	if err != nil {
		return use, fmt.Errorf("column %s: %w", use.Column, err)
	}
	header := envelope.Header(mode)
	q := `SELECT CASE WHEN octet_length(p) = 10 AND substring(p from 1 for 5) = $1 AND substring(p from 6 for 1) = $2
	                  THEN substring(p from 7 for 4) END, count(*)
	      FROM (SELECT ` + prefix + ` AS p FROM ` + table + ` WHERE ` + c + ` IS NOT NULL) s
	      GROUP BY 1`
	rows, err := db.Query(ctx, q, header[:], []byte{tinkPrefixTink})
	if err != nil {
		return use, fmt.Errorf("column %s: reading the key IDs: %w", use.Column, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id []byte
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return use, fmt.Errorf("column %s: %w", use.Column, err)
		}
		if len(id) != 4 {
			use.NotCiphertext += n
			continue
		}
		use.ByKey = append(use.ByKey, keyCount{KeyID: uint32(id[0])<<24 | uint32(id[1])<<16 | uint32(id[2])<<8 | uint32(id[3]), Rows: n})
	}
	if err := rows.Err(); err != nil {
		return use, fmt.Errorf("column %s: reading the key IDs: %w", use.Column, err)
	}
	slices.SortFunc(use.ByKey, func(a, b keyCount) int {
		return cmp.Or(cmp.Compare(b.Rows, a.Rows), cmp.Compare(a.KeyID, b.KeyID))
	})
	return use, nil
}

// envelopeMode is the envelope mode of a policy mode.
func envelopeMode(m policy.Mode) (envelope.Mode, error) {
	if m == policy.ModeRandomized {
		return envelope.Randomized, nil
	}
	return 0, fmt.Errorf("mode %s is not supported yet", m)
}

// keyColumns returns the columns of the policy in e whose entry uses keyring name.
func keyColumns(e config.Encryption, name string) (*policy.Policy, []*policy.Column, error) {
	pol, err := policy.Load(e.Policy)
	if err != nil {
		return nil, nil, err
	}
	var cols []*policy.Column
	for _, c := range pol.Columns() {
		if c.Key == name {
			cols = append(cols, c)
		}
	}
	return pol, cols, nil
}

// scanColumns runs scanKeyUse over cols.
func scanColumns(ctx context.Context, db *pgxpool.Pool, cols []*policy.Column) ([]keyUse, error) {
	uses := make([]keyUse, 0, len(cols))
	for _, c := range cols {
		u, err := scanKeyUse(ctx, db, c)
		if err != nil {
			return nil, err
		}
		uses = append(uses, u)
	}
	return uses, nil
}

// keysRetireReport is what `keys retire` found and did.
type keysRetireReport struct {
	Name  string `json:"name"`
	KeyID uint32 `json:"key_id"`
	// Policy is the policy file whose columns were scanned.
	Policy  string   `json:"policy"`
	Columns []keyUse `json:"columns"`
	// RowsUnderKey is how many stored values the scan found under the key.
	RowsUnderKey int64 `json:"rows_under_key"`
	// Retired is true when the key is disabled now (by this run or an earlier one).
	Retired         bool   `json:"retired"`
	AlreadyRetired  bool   `json:"already_retired"`
	RefreshInterval string `json:"refresh_interval"`
}

// errKeyInUse is wrapped by the refusal to retire a key that stored values still use.
var errKeyInUse = errors.New("data key still in use")

// runKeysRetire scans the columns that use keyring name and disables its key keyID if no value
// is under it. The report is returned whenever the scan ran, also with a refusal.
func runKeysRetire(ctx context.Context, e config.Encryption, name string, id uint32) (*keysRetireReport, error) {
	pol, cols, err := keyColumns(e, name)
	if err != nil {
		return nil, err
	}
	a, err := openKeyAdmin(ctx, e, true)
	if err != nil {
		return nil, err
	}
	defer a.close()
	kr, err := a.m.Keyring(ctx, name)
	if err != nil {
		return nil, a.noKeyring(name, err)
	}
	info := kr.Info()
	i := slices.IndexFunc(info.Keys, func(k keys.KeyInfo) bool { return k.ID == id })
	if i < 0 {
		ids := make([]string, len(info.Keys))
		for j, k := range info.Keys {
			ids[j] = keyID(k.ID)
		}
		return nil, fmt.Errorf("keyring %q has no key %s (its keys: %s): %w", name, keyID(id), strings.Join(ids, ", "), keys.ErrKeyNotFound)
	}
	if info.Keys[i].Primary {
		return nil, fmt.Errorf("key %s is the primary key of keyring %q, which encrypts every new value: rotate first (`fleproxy keys rotate %s`), then `fleproxy keys reencrypt --key %s`, then retire it: %w",
			keyID(id), name, name, name, keys.ErrPrimaryKey)
	}
	db, done, err := a.service(ctx, e)
	if err != nil {
		return nil, err
	}
	defer done()
	rep := &keysRetireReport{Name: name, KeyID: id, Policy: pol.Source(), RefreshInterval: e.RefreshInterval.String()}
	if rep.Columns, err = scanColumns(ctx, db, cols); err != nil {
		return nil, err
	}
	var perColumn []string
	for _, u := range rep.Columns {
		if n := u.rows(func(k uint32) bool { return k == id }); n > 0 {
			rep.RowsUnderKey += n
			perColumn = append(perColumn, fmt.Sprintf("%s: %d", u.Column, n))
		}
	}
	if info.Keys[i].Status == keys.KeyDisabled {
		rep.Retired, rep.AlreadyRetired = true, true
		return rep, nil
	}
	if rep.RowsUnderKey > 0 {
		return rep, fmt.Errorf("refusing to retire key %s of keyring %q: %d row(s) still hold values under it (%s); run `fleproxy keys reencrypt --key %s` first, then retire it: %w",
			keyID(id), name, rep.RowsUnderKey, strings.Join(perColumn, ", "), name, errKeyInUse)
	}
	// The key stopped being the primary when the next key was added. Until every proxy has
	// refreshed since then, one may still encrypt new values with it.
	if i+1 < len(info.Keys) {
		if since := info.Keys[i+1].Created; !since.IsZero() {
			safe := since.Add(e.RefreshInterval + time.Second)
			if wait := time.Until(safe); wait > 0 {
				return rep, fmt.Errorf("refusing to retire key %s of keyring %q yet: it stopped being the primary at %s, less than encryption.refresh_interval (%s) ago, so a proxy that has not refreshed may still encrypt with it; retry in %s (and re-encrypt again if the scan then finds rows): %w",
					keyID(id), name, since.UTC().Format(time.RFC3339), e.RefreshInterval, wait.Round(time.Second), errKeyInUse)
			}
		}
	}
	if err := a.m.Retire(ctx, name, id); err != nil {
		return rep, fmt.Errorf("retire key %s of keyring %q: %w", keyID(id), name, err)
	}
	rep.Retired = true
	return rep, nil
}

func (r *keysRetireReport) print(out io.Writer) error {
	fmt.Fprintf(out, "Keyring %s, key %s. Stored values by data key, in the columns of policy %s that use keyring %s:\n", r.Name, keyID(r.KeyID), r.Policy, r.Name)
	if len(r.Columns) == 0 {
		fmt.Fprintln(out, "  (no column of the policy uses this keyring: nothing to scan)")
	} else {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  COLUMN\tUNDER %s\tUNDER OTHER KEYS\tNOT CIPHERTEXT\n", keyID(r.KeyID))
		for _, u := range r.Columns {
			if u.TableMissing {
				fmt.Fprintf(tw, "  %s\t-\t-\t-\t(table does not exist)\n", u.Column)
				continue
			}
			under := u.rows(func(id uint32) bool { return id == r.KeyID })
			other := u.rows(func(id uint32) bool { return id != r.KeyID })
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", u.Column, under, other, u.NotCiphertext)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var err error
	switch {
	case r.AlreadyRetired:
		_, err = fmt.Fprintf(out, "Key %s of keyring %s was already retired; nothing changed.\n", keyID(r.KeyID), r.Name)
		if err == nil && r.RowsUnderKey > 0 {
			_, err = fmt.Fprintf(out, "WARNING: %d value(s) are under this retired key and cannot be read: `fleproxy keys enable %s --key-id %s`, then `fleproxy keys reencrypt --key %s`.\n",
				r.RowsUnderKey, r.Name, keyID(r.KeyID), r.Name)
		}
	case r.Retired:
		_, err = fmt.Fprintf(out, `Retired key %s of keyring %s: it no longer encrypts or decrypts.
Running proxies stop using it within encryption.refresh_interval (%s). It stays in the keyset, disabled:
`+"`fleproxy keys enable %s --key-id %s`"+` undoes this.
`, keyID(r.KeyID), r.Name, r.RefreshInterval, r.Name, keyID(r.KeyID))
	}
	return err
}

// keysEnableReport is what `keys enable` did.
type keysEnableReport struct {
	Name            string `json:"name"`
	KeyID           uint32 `json:"key_id"`
	RefreshInterval string `json:"refresh_interval"`
}

// runKeysEnable enables key keyID of keyring name again.
func runKeysEnable(ctx context.Context, e config.Encryption, name string, id uint32) (*keysEnableReport, error) {
	a, err := openKeyAdmin(ctx, e, true)
	if err != nil {
		return nil, err
	}
	defer a.close()
	if err := a.m.Enable(ctx, name, id); err != nil {
		if errors.Is(err, keys.ErrNotFound) {
			return nil, a.noKeyring(name, err)
		}
		return nil, fmt.Errorf("enable key %s of keyring %q: %w", keyID(id), name, err)
	}
	return &keysEnableReport{Name: name, KeyID: id, RefreshInterval: e.RefreshInterval.String()}, nil
}

// keysDestroyReport is what `keys destroy` found and did.
type keysDestroyReport struct {
	Name   string   `json:"name"`
	KEKID  string   `json:"kek_id"`
	KeyIDs []uint32 `json:"key_ids"`
	Store  string   `json:"store"`
	// Policy is the policy file whose columns were scanned.
	Policy  string   `json:"policy"`
	Columns []keyUse `json:"columns"`
	// Unrecoverable is how many stored values are under the keyring's keys.
	Unrecoverable   int64  `json:"unrecoverable_values"`
	Destroyed       bool   `json:"destroyed"`
	RefreshInterval string `json:"refresh_interval"`
}

// under reports whether id is one of the keyring's keys.
func (r *keysDestroyReport) under(id uint32) bool { return slices.Contains(r.KeyIDs, id) }

// runKeysDestroy describes what destroying keyring name makes unrecoverable, asks confirm, and
// destroys it. It needs no KEK.
func runKeysDestroy(ctx context.Context, e config.Encryption, name string, confirm func(*keysDestroyReport) error) (*keysDestroyReport, error) {
	pol, cols, err := keyColumns(e, name)
	if err != nil {
		return nil, err
	}
	a, err := openKeyAdmin(ctx, e, false)
	if err != nil {
		return nil, err
	}
	defer a.close()
	infos, err := a.m.List(ctx)
	if err != nil {
		return nil, a.ks.explain(err)
	}
	i := slices.IndexFunc(infos, func(in keys.KeyringInfo) bool { return in.Name == name })
	if i < 0 {
		return nil, a.noKeyring(name, keys.ErrNotFound)
	}
	rep := &keysDestroyReport{
		Name: name, KEKID: infos[i].KEKID, KeyIDs: []uint32{}, Store: a.ks.desc, Policy: pol.Source(),
		RefreshInterval: e.RefreshInterval.String(),
	}
	for _, k := range infos[i].Keys {
		rep.KeyIDs = append(rep.KeyIDs, k.ID)
	}
	db, done, err := a.service(ctx, e)
	if err != nil {
		return nil, err
	}
	defer done()
	if rep.Columns, err = scanColumns(ctx, db, cols); err != nil {
		return nil, err
	}
	for _, u := range rep.Columns {
		rep.Unrecoverable += u.rows(rep.under)
	}
	if err := confirm(rep); err != nil {
		return nil, err
	}
	if err := a.m.Destroy(ctx, name); err != nil {
		if errors.Is(err, keys.ErrNotFound) {
			return nil, a.noKeyring(name, err)
		}
		return nil, fmt.Errorf("destroy keyring %q: %w", name, err)
	}
	rep.Destroyed = true
	return rep, nil
}

// isTerminal reports whether r is a character device, as a terminal is.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// confirmDestroy asks the user, on prompt, to type name on in, a terminal if tty, and fails
// unless they do.
func confirmDestroy(in io.Reader, tty bool, prompt io.Writer, name string) error {
	if !tty {
		return fmt.Errorf("refusing to destroy keyring %q without confirmation: standard input is not a terminal; pass --yes to destroy it", name)
	}
	fmt.Fprintf(prompt, "This cannot be undone. Type the keyring name (%s) to destroy it: ", name)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("no confirmation read from standard input; keyring %q not destroyed (pass --yes to destroy without asking)", name)
	}
	if strings.TrimSpace(line) != name {
		return fmt.Errorf("the name typed does not match; keyring %q not destroyed", name)
	}
	return nil
}

func (r *keysDestroyReport) printPlan(out io.Writer) error {
	ids := make([]string, len(r.KeyIDs))
	for i, id := range r.KeyIDs {
		ids[i] = keyID(id)
	}
	fmt.Fprintf(out, "Keyring %s (keys %s, KEK %s) in %s.\n", r.Name, strings.Join(ids, ", "), r.KEKID, r.Store)
	if len(r.Columns) == 0 {
		fmt.Fprintf(out, "No column of policy %s uses it.\n", r.Policy)
	} else {
		fmt.Fprintf(out, "Destroying it makes these values unrecoverable (columns of policy %s that use it):\n", r.Policy)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  COLUMN\tVALUES UNDER ITS KEYS")
		for _, u := range r.Columns {
			if u.TableMissing {
				fmt.Fprintf(tw, "  %s\t- (table does not exist)\n", u.Column)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%d\n", u.Column, u.rows(r.under))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(out, "Total: %d value(s) unrecoverable, in this database and every replica, backup and dump of it.\n", r.Unrecoverable)
	return err
}

func (r *keysDestroyReport) printDone(out io.Writer) error {
	_, err := fmt.Fprintf(out, `Destroyed keyring %s: deleted from %s.
Running proxies drop it within encryption.refresh_interval (%s); reads of its columns then fail with
SQLSTATE XX001 naming the column, and writes to them fail.
Next: take its columns out of the policy (a proxy does not start with a policy that names a missing
keyring). Backups of the key store still hold the wrapped keyring until they expire; with Vault,
rotate the Transit key, run `+"`fleproxy keys rewrap`"+` and raise min_decryption_version to make those
copies useless.
`, r.Name, r.Store, r.RefreshInterval)
	return err
}

// emitReport writes a command's report, even a partial one that came with an error: JSON with
// --json, text otherwise. It returns runErr, or the write's error when runErr is nil.
func emitReport[T any, R interface {
	*T
	print(io.Writer) error
}](flags *adminFlags, out io.Writer, rep R, runErr error) error {
	if rep == nil {
		return runErr
	}
	var err error
	if flags.json {
		err = writeJSON(out, rep)
	} else {
		err = rep.print(out)
	}
	if runErr != nil {
		return runErr
	}
	return err
}
