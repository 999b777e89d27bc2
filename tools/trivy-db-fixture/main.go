// Command trivy-db-fixture writes a Trivy vulnerability database (schema version 2) from
// YAML fixtures, for offline tests and air-gapped demos: a bbolt file `trivy.db` and the
// `metadata.json` beside it, in the layout Trivy reads (`<data source bucket>` → package →
// advisory, plus the `vulnerability` and `data-source` buckets).
//
// Fixture format (a list of buckets; pairs nest buckets or hold JSON-encoded values):
//
//	- bucket: "go::GitHub Security Advisory Go"
//	  pairs:
//	    - bucket: golang.org/x/text
//	      pairs:
//	        - key: CVE-2022-32149
//	          value: {VulnerableVersions: ["< 0.3.8"], PatchedVersions: ["0.3.8"]}
//
// Usage: trivy-db-fixture -out DIR -updated-at RFC3339 FIXTURE.yaml...
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"gopkg.in/yaml.v3"
)

type pair struct {
	Bucket string `yaml:"bucket"`
	Pairs  []pair `yaml:"pairs"`
	Key    string `yaml:"key"`
	Value  any    `yaml:"value"`
}

type metadata struct {
	Version      int       `json:"Version"`
	NextUpdate   time.Time `json:"NextUpdate"`
	UpdatedAt    time.Time `json:"UpdatedAt"`
	DownloadedAt time.Time `json:"DownloadedAt"`
}

func main() {
	out := flag.String("out", "", "output directory (receives trivy.db and metadata.json)")
	updated := flag.String("updated-at", "", "UpdatedAt of the database (RFC 3339); default now")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: trivy-db-fixture -out DIR [-updated-at RFC3339] FIXTURE.yaml...")
		os.Exit(2)
	}
	updatedAt := time.Now().UTC()
	if *updated != "" {
		t, err := time.Parse(time.RFC3339, *updated)
		check(err, "-updated-at")
		updatedAt = t.UTC()
	}
	check(os.MkdirAll(*out, 0o755), "output directory")
	dbPath := filepath.Join(*out, "trivy.db")
	tmp := dbPath + ".tmp"
	_ = os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o644, nil)
	check(err, "open database")
	for _, file := range flag.Args() {
		raw, err := os.ReadFile(file)
		check(err, file)
		var root []pair
		check(yaml.Unmarshal(raw, &root), file)
		check(db.Update(func(tx *bolt.Tx) error {
			for _, p := range root {
				if p.Bucket == "" {
					return fmt.Errorf("%s: top-level entries must be buckets", file)
				}
				b, err := tx.CreateBucketIfNotExists([]byte(p.Bucket))
				if err != nil {
					return err
				}
				if err := fill(b, p.Pairs); err != nil {
					return fmt.Errorf("%s: bucket %q: %w", file, p.Bucket, err)
				}
			}
			return nil
		}), file)
	}
	check(db.Close(), "close database")
	check(os.Rename(tmp, dbPath), "rename database")
	meta, err := json.Marshal(metadata{Version: 2, NextUpdate: updatedAt.Add(24 * time.Hour), UpdatedAt: updatedAt, DownloadedAt: updatedAt})
	check(err, "metadata")
	check(os.WriteFile(filepath.Join(*out, "metadata.json"), meta, 0o644), "metadata.json")
}

func fill(b *bolt.Bucket, pairs []pair) error {
	for _, p := range pairs {
		if p.Bucket != "" {
			child, err := b.CreateBucketIfNotExists([]byte(p.Bucket))
			if err != nil {
				return err
			}
			if err := fill(child, p.Pairs); err != nil {
				return fmt.Errorf("bucket %q: %w", p.Bucket, err)
			}
			continue
		}
		value, err := json.Marshal(p.Value)
		if err != nil {
			return fmt.Errorf("key %q: %w", p.Key, err)
		}
		if err := b.Put([]byte(p.Key), value); err != nil {
			return err
		}
	}
	return nil
}

func check(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "trivy-db-fixture: %s: %v\n", what, err)
		os.Exit(1)
	}
}
