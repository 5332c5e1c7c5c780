package keys_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/fleproxy/fleproxy/envelope"
	"github.com/fleproxy/fleproxy/keys"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fleproxy-keys-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Development only: a KEK in a local file. Production uses Vault Transit.
	kek, err := keys.InitLocalKEK(filepath.Join(dir, "kek.json"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := keys.NewFileStore(filepath.Join(dir, "keyrings"))
	if err != nil {
		log.Fatal(err)
	}
	m := keys.NewManager(kek, store)
	if _, err := m.Create(ctx, "customer-pii", keys.KindAEAD); err != nil {
		log.Fatal(err)
	}

	email, err := m.ColumnCipher(ctx, "customer-pii", "pagila.customer.email", envelope.Randomized)
	if err != nil {
		log.Fatal(err)
	}
	raw, err := email.Encrypt([]byte("alice@example.com"))
	if err != nil {
		log.Fatal(err)
	}
	pt, err := email.Decrypt(raw)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d-byte envelope, plaintext %q\n", len(raw), pt)
	fmt.Println(string(envelope.Armor(raw)[:13]))
	// Output:
	// 55-byte envelope, plaintext "alice@example.com"
	// fle1:RkxFAQEB
}
