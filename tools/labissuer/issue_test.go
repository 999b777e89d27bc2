package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const labCertificatesFile = "../../knative/base/tls/certificates.yaml"

// labObjects reads the project's cert-manager objects, keyed "Kind/name".
func labObjects(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(labCertificatesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		out[u.GetKind()+"/"+u.GetName()] = u
	}
	for _, k := range []string{"ClusterIssuer/arca-selfsigned", "ClusterIssuer/arca-ca", "Certificate/arca-ca", "Certificate/arca-ingress", "Certificate/arca-signing"} {
		if out[k] == nil {
			t.Fatalf("%s: no %s", labCertificatesFile, k)
		}
	}
	return out
}

func labCertificate(t *testing.T, name string) *Certificate {
	t.Helper()
	c, err := ParseCertificate(labObjects(t)["Certificate/"+name])
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return c
}

// certificateFromYAML parses a Certificate given as YAML (namespace "test").
func certificateFromYAML(t *testing.T, spec string) *Certificate {
	t.Helper()
	var m map[string]any
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(spec), 4096).Decode(&m); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "spec": m}}
	u.SetNamespace("test")
	u.SetName("test")
	c, err := ParseCertificate(u)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemTypes(data []byte) []string {
	var types []string
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return types
		}
		types = append(types, b.Type)
	}
}

func secretState(c *Certificate, is *Issued) SecretState {
	_, ann := SecretMetadata(c, is.Cert)
	return SecretState{Exists: true, Data: is.Data, Annotations: ann}
}

// issueLabCA issues arca-ca (selfSigned) and returns it with the CA issuer made from its Secret data.
func issueLabCA(t *testing.T, now time.Time) (*Issued, *Issuer) {
	t.Helper()
	ca, err := Issue(labCertificate(t, "arca-ca"), &Issuer{SelfSigned: true}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := CAIssuerFromSecret("cert-manager", "arca-ca", ca.Data)
	if err != nil {
		t.Fatal(err)
	}
	return ca, iss
}

func TestIssueLabCertificates(t *testing.T) {
	now := time.Now()
	ca, caIssuer := issueLabCA(t, now)
	caPEM := ca.Data[keyTLSCert]

	tests := []struct {
		name       string
		issuer     *Issuer
		issuerName string
		isCA       bool
		ku         x509.KeyUsage
		eku        []x509.ExtKeyUsage
		cn         string
		dnsNames   []string
		orgs       []string
		keyPEM     string
		lifetime   time.Duration
		renewal    time.Duration // notAfter − renewalTime
	}{
		{
			name: "arca-ca", issuer: &Issuer{SelfSigned: true}, issuerName: "arca-selfsigned",
			isCA: true, ku: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			cn: "Arca Kind CA", keyPEM: "EC PRIVATE KEY", lifetime: 87600 * time.Hour, renewal: 87600 * time.Hour / 3,
		},
		{
			name: "arca-ingress", issuer: caIssuer, issuerName: "arca-ca",
			ku: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			cn: "arca.example.test", dnsNames: []string{"arca.example.test"}, keyPEM: "EC PRIVATE KEY",
			lifetime: 2160 * time.Hour, renewal: 720 * time.Hour,
		},
		{
			name: "arca-signing", issuer: caIssuer, issuerName: "arca-ca",
			ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
			cn: "Arca artifact signing", orgs: []string{"Arca"}, keyPEM: "PRIVATE KEY",
			lifetime: 8760 * time.Hour, renewal: 720 * time.Hour,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			crt := labCertificate(t, tc.name)
			is, err := Issue(crt, tc.issuer, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			keys := slices.Sorted(maps.Keys(is.Data))
			if !slices.Equal(keys, []string{"ca.crt", "tls.crt", "tls.key"}) {
				t.Fatalf("secret data keys %v", keys)
			}
			// tls.crt: only the leaf — the CA is self-signed, so cert-manager leaves it out of the chain.
			if got := pemTypes(is.Data[keyTLSCert]); !slices.Equal(got, []string{"CERTIFICATE"}) {
				t.Fatalf("tls.crt blocks %v, want one certificate", got)
			}
			leaf := is.Cert
			if leaf.IsCA != tc.isCA || !leaf.BasicConstraintsValid {
				t.Errorf("isCA %v (basic constraints valid %v), want %v", leaf.IsCA, leaf.BasicConstraintsValid, tc.isCA)
			}
			if leaf.KeyUsage != tc.ku {
				t.Errorf("key usage %b, want %b", leaf.KeyUsage, tc.ku)
			}
			if !slices.Equal(leaf.ExtKeyUsage, tc.eku) {
				t.Errorf("ext key usage %v, want %v", leaf.ExtKeyUsage, tc.eku)
			}
			if leaf.Subject.CommonName != tc.cn || !slices.Equal(leaf.DNSNames, tc.dnsNames) || !slices.Equal(leaf.Subject.Organization, tc.orgs) {
				t.Errorf("subject %q SANs %v, want CN %q O %v SANs %v", leaf.Subject, leaf.DNSNames, tc.cn, tc.orgs, tc.dnsNames)
			}
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got != tc.lifetime {
				t.Errorf("lifetime %v, want %v", got, tc.lifetime)
			}
			if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("signature algorithm %v", leaf.SignatureAlgorithm)
			}

			// tls.key: encoding as asked, ECDSA P-256, matching the certificate.
			if got := pemTypes(is.Data[keyTLSKey]); !slices.Equal(got, []string{tc.keyPEM}) {
				t.Fatalf("tls.key blocks %v, want %s", got, tc.keyPEM)
			}
			block, _ := pem.Decode(is.Data[keyTLSKey])
			var parsed any
			if tc.keyPEM == "PRIVATE KEY" {
				parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
			} else {
				parsed, err = x509.ParseECPrivateKey(block.Bytes)
			}
			if err != nil {
				t.Fatal(err)
			}
			key, ok := parsed.(*ecdsa.PrivateKey)
			if !ok || key.Curve != elliptic.P256() {
				t.Fatalf("key %T, want ECDSA P-256", parsed)
			}
			if !key.PublicKey.Equal(leaf.PublicKey) {
				t.Fatal("tls.key does not match tls.crt")
			}

			// ca.crt: the certificate itself for selfSigned, the CA certificate for the CA issuer.
			wantCA := is.Data[keyTLSCert]
			if tc.issuer != nil && !tc.issuer.SelfSigned {
				wantCA = caPEM
			}
			if !bytes.Equal(is.Data[keyCACert], wantCA) {
				t.Fatal("ca.crt is not the issuing CA certificate")
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(is.Data[keyCACert]) {
				t.Fatal("ca.crt does not parse")
			}
			opts := x509.VerifyOptions{Roots: roots, CurrentTime: now.Add(time.Minute), KeyUsages: tc.eku}
			if len(tc.eku) == 0 {
				opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
			}
			if len(tc.dnsNames) > 0 {
				opts.DNSName = tc.dnsNames[0]
			}
			if _, err := leaf.Verify(opts); err != nil {
				t.Fatalf("verify against ca.crt: %v", err)
			}

			// The Secret annotations and label cert-manager writes.
			labels, ann := SecretMetadata(crt, leaf)
			want := map[string]string{
				"cert-manager.io/certificate-name": tc.name,
				"cert-manager.io/issuer-name":      tc.issuerName,
				"cert-manager.io/issuer-kind":      "ClusterIssuer",
				"cert-manager.io/issuer-group":     "cert-manager.io",
				"cert-manager.io/common-name":      tc.cn,
				"cert-manager.io/alt-names":        strings.Join(tc.dnsNames, ","),
				"cert-manager.io/ip-sans":          "",
				"cert-manager.io/uri-sans":         "",
			}
			if len(tc.orgs) > 0 {
				want["cert-manager.io/subject-organizations"] = strings.Join(tc.orgs, ",")
			}
			for k, v := range want {
				if got, ok := ann[k]; !ok || got != v {
					t.Errorf("annotation %s = %q (set %v), want %q", k, got, ok, v)
				}
			}
			if len(ann) != len(want) {
				t.Errorf("annotations %v, want %v", ann, want)
			}
			if labels["controller.cert-manager.io/fao"] != "true" {
				t.Errorf("labels %v", labels)
			}

			// What was just issued is up to date: no re-issuance, Ready, renewal as specified.
			ev := Evaluate(crt, secretState(crt, is), now, 0)
			if ev.Issue || !ev.Ready || ev.ReadyReason != ReasonReady || ev.ReadyMessage != MessageReady {
				t.Fatalf("fresh certificate evaluated as %+v", ev)
			}
			if got := leaf.NotAfter.Sub(*ev.RenewalTime); got < tc.renewal || got > tc.renewal+time.Second {
				t.Errorf("renewal %v before notAfter, want %v", got, tc.renewal)
			}
		})
	}
}

func TestRotationPolicy(t *testing.T) {
	now := time.Now()
	// arca-ca: rotationPolicy Never keeps the key across issuances.
	crt := labCertificate(t, "arca-ca")
	first, err := Issue(crt, &Issuer{SelfSigned: true}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Issue(crt, &Issuer{SelfSigned: true}, first.Data[keyTLSKey], now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !second.KeyReused || !bytes.Equal(first.Data[keyTLSKey], second.Data[keyTLSKey]) {
		t.Fatal("rotationPolicy Never: key changed")
	}
	if bytes.Equal(first.Data[keyTLSCert], second.Data[keyTLSCert]) || first.Cert.SerialNumber.Cmp(second.Cert.SerialNumber) == 0 {
		t.Fatal("re-issuance returned the same certificate")
	}
	// A CA re-issued with the same key still verifies what the first one signed.
	_, caIssuer := issueLabCA(t, now)
	leaf, err := Issue(labCertificate(t, "arca-ingress"), caIssuer, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	reissuedCA, err := Issue(crt, &Issuer{SelfSigned: true}, caIssuer.keyPEM(t), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.Cert.CheckSignatureFrom(reissuedCA.Cert); err != nil {
		t.Fatalf("leaf does not verify against the re-issued CA: %v", err)
	}

	// Never with a key that does not parse: a new key (cert-manager's keymanager does the same).
	garbled, err := Issue(crt, &Issuer{SelfSigned: true}, []byte("not a key"), now)
	if err != nil || garbled.KeyReused {
		t.Fatalf("garbled key: %v, reused %v", err, garbled != nil && garbled.KeyReused)
	}
	// Never with a key that does not fit the spec: user intervention, no issuance.
	p384 := certificateFromYAML(t, `{commonName: x, privateKey: {algorithm: ECDSA, size: 384, rotationPolicy: Never}, secretName: s, issuerRef: {name: i}}`)
	if _, err := Issue(p384, &Issuer{SelfSigned: true}, first.Data[keyTLSKey], now); !errors.Is(err, ErrKeyNeedsIntervention) {
		t.Fatalf("mismatching key with Never: %v", err)
	}

	// arca-ingress: rotationPolicy Always makes a new key every time.
	ing := labCertificate(t, "arca-ingress")
	a, err := Issue(ing, caIssuer, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Issue(ing, caIssuer, a.Data[keyTLSKey], now)
	if err != nil {
		t.Fatal(err)
	}
	if b.KeyReused || bytes.Equal(a.Data[keyTLSKey], b.Data[keyTLSKey]) {
		t.Fatal("rotationPolicy Always: key reused")
	}
}

// keyPEM re-encodes a CA issuer's key (SEC 1), for tests.
func (i *Issuer) keyPEM(t *testing.T) []byte {
	t.Helper()
	p, err := EncodeKey(i.CAKey, "PKCS1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntermediateCAChain(t *testing.T) {
	now := time.Now()
	root, err := Issue(certificateFromYAML(t, `{isCA: true, commonName: root, privateKey: {algorithm: ECDSA}, secretName: root, issuerRef: {name: self}}`),
		&Issuer{SelfSigned: true}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	rootIssuer, err := CAIssuerFromSecret("ns", "root", root.Data)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := Issue(certificateFromYAML(t, `{isCA: true, commonName: intermediate, privateKey: {algorithm: ECDSA, size: 384}, secretName: inter, issuerRef: {name: root}}`),
		rootIssuer, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pemTypes(inter.Data[keyTLSCert])); n != 1 {
		t.Fatalf("intermediate tls.crt has %d certificates, want 1 (self-signed root left out)", n)
	}
	interIssuer, err := CAIssuerFromSecret("ns", "inter", inter.Data)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := Issue(certificateFromYAML(t, `{dnsNames: [a.test], ipAddresses: [10.0.0.1], uris: ["spiffe://lab/x"], usages: [client auth, server auth], privateKey: {algorithm: Ed25519}, secretName: leaf, issuerRef: {name: inter}}`),
		interIssuer, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := DecodeCertificates(leaf.Data[keyTLSCert])
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[1].Subject.CommonName != "intermediate" {
		t.Fatalf("leaf tls.crt: %d certificates, want leaf + intermediate", len(chain))
	}
	if !bytes.Equal(leaf.Data[keyCACert], root.Data[keyTLSCert]) {
		t.Fatal("leaf ca.crt is not the root")
	}
	if leaf.Cert.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Errorf("signature algorithm %v, want ECDSA-SHA384 (the intermediate's P-384 key)", leaf.Cert.SignatureAlgorithm)
	}
	if _, ok := leaf.Key.(ed25519.PrivateKey); !ok || !slices.Equal(pemTypes(leaf.Data[keyTLSKey]), []string{"PRIVATE KEY"}) {
		t.Fatalf("Ed25519 key %T encoded as %v, want PKCS#8", leaf.Key, pemTypes(leaf.Data[keyTLSKey]))
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM(leaf.Data[keyCACert])
	inters.AddCert(chain[1])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "a.test",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if len(leaf.Cert.IPAddresses) != 1 || leaf.Cert.IPAddresses[0].String() != "10.0.0.1" || len(leaf.Cert.URIs) != 1 || leaf.Cert.URIs[0].String() != "spiffe://lab/x" {
		t.Fatalf("SANs: IPs %v URIs %v", leaf.Cert.IPAddresses, leaf.Cert.URIs)
	}
	_, ann := SecretMetadata(certificateFromYAML(t, `{secretName: leaf, issuerRef: {name: inter}, dnsNames: [a.test]}`), leaf.Cert)
	if ann[annIPSANs] != "10.0.0.1" || ann[annURISANs] != "spiffe://lab/x" || ann[annAltNames] != "a.test" || ann[annCommonName] != "" {
		t.Fatalf("annotations %v", ann)
	}
}

func TestKeyAlgorithmsAndEncodings(t *testing.T) {
	tests := []struct {
		spec    string
		pemType string
		check   func(any) bool
	}{
		{`{algorithm: RSA}`, "RSA PRIVATE KEY", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 2048 }},
		{`{}`, "RSA PRIVATE KEY", func(k any) bool { _, ok := k.(*rsa.PrivateKey); return ok }},
		{`{algorithm: ECDSA}`, "EC PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P256() }},
		{`{algorithm: ECDSA, size: 384, encoding: PKCS8}`, "PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P384() }},
		{`{algorithm: ECDSA, size: 521, encoding: PKCS1}`, "EC PRIVATE KEY", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P521() }},
		{`{algorithm: Ed25519}`, "PRIVATE KEY", func(k any) bool { _, ok := k.(ed25519.PrivateKey); return ok }},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			crt := certificateFromYAML(t, `{commonName: k, secretName: s, issuerRef: {name: i}, privateKey: `+tc.spec+`}`)
			is, err := Issue(crt, &Issuer{SelfSigned: true}, nil, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got := pemTypes(is.Data[keyTLSKey]); !slices.Equal(got, []string{tc.pemType}) {
				t.Fatalf("PEM %v, want %s", got, tc.pemType)
			}
			k, err := DecodeKey(is.Data[keyTLSKey])
			if err != nil || !tc.check(k) {
				t.Fatalf("key %T: %v", k, err)
			}
			if v := KeyMatchesSpec(k, crt.privateKey()); len(v) > 0 {
				t.Fatalf("generated key does not match its own spec: %v", v)
			}
		})
	}
	if _, err := GenerateKey(PrivateKey{Algorithm: "ECDSA", Size: 255}); err == nil {
		t.Error("ECDSA 255 accepted")
	}
	if _, err := GenerateKey(PrivateKey{Algorithm: "RSA", Size: 1024}); err == nil {
		t.Error("RSA 1024 accepted")
	}
}

func TestKeyUsages(t *testing.T) {
	ku, eku, err := KeyUsages([]string{"signing", "content commitment", "crl sign", "s/mime", "timestamping", "ocsp signing", "any"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if ku != x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment|x509.KeyUsageCRLSign {
		t.Errorf("ku %b", ku)
	}
	if !slices.Equal(eku, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageTimeStamping, x509.ExtKeyUsageOCSPSigning, x509.ExtKeyUsageAny}) {
		t.Errorf("eku %v", eku)
	}
	if ku, eku, _ := KeyUsages(nil, false); ku != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || eku != nil {
		t.Errorf("defaults: %b %v", ku, eku)
	}
	if ku, _, _ := KeyUsages([]string{"code signing"}, true); ku != x509.KeyUsageCertSign {
		t.Errorf("CA with explicit usages: %b, want cert sign only", ku)
	}
	if _, _, err := KeyUsages([]string{"server auth", "bogus"}, false); err == nil {
		t.Error("unknown usage accepted")
	}
}

func TestRenewalTime(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * time.Hour)
	pct := int32(25)
	tests := []struct {
		spec       string
		renewEvery time.Duration
		want       *time.Time
	}{
		{``, 0, ptr(nb.Add(60 * time.Hour))},
		{`renewBefore: 10h`, 0, ptr(na.Add(-10 * time.Hour))},
		{`renewBefore: 100h`, 0, ptr(nb.Add(60 * time.Hour))}, // not shorter than the lifetime: ignored
		{`renewBeforePercentage: 25`, 0, ptr(na.Add(-90 * time.Hour * time.Duration(pct) / 100))},
		{`renewal: {policy: Disabled}`, 0, nil},
		{`renewal: {policy: Disabled}`, time.Hour, ptr(nb.Add(time.Hour))},
		{`renewBefore: 10h`, 2 * time.Hour, ptr(nb.Add(2 * time.Hour))},
		{`renewBefore: 10h`, 200 * time.Hour, ptr(na.Add(-10 * time.Hour))},
	}
	for _, tc := range tests {
		spec := "{commonName: x, secretName: s, issuerRef: {name: i}"
		if tc.spec != "" {
			spec += ", " + tc.spec
		}
		c := certificateFromYAML(t, spec+"}")
		got := RenewalTime(c, nb, na, tc.renewEvery)
		if (got == nil) != (tc.want == nil) || (got != nil && !got.Equal(*tc.want)) {
			t.Errorf("%s renewEvery %v: %v, want %v", tc.spec, tc.renewEvery, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestEvaluate(t *testing.T) {
	now := time.Now()
	_, caIssuer := issueLabCA(t, now)
	crt := labCertificate(t, "arca-ingress")
	is, err := Issue(crt, caIssuer, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	good := secretState(crt, is)
	with := func(f func(s *SecretState)) SecretState {
		s := SecretState{Exists: true, Data: map[string][]byte{}, Annotations: map[string]string{}}
		for k, v := range good.Data {
			s.Data[k] = v
		}
		for k, v := range good.Annotations {
			s.Annotations[k] = v
		}
		f(&s)
		return s
	}
	other, err := Issue(crt, caIssuer, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	changed := func(edit func(*Certificate)) *Certificate {
		c := *crt
		c.Spec = crt.Spec
		edit(&c)
		return &c
	}
	notAfter := is.Cert.NotAfter
	tests := []struct {
		name        string
		crt         *Certificate
		secret      SecretState
		now         time.Time
		renewEvery  time.Duration
		issue       string // "" = no issuance
		ready       string // Ready reason
		messagePart string
	}{
		{"up to date", crt, good, now, 0, "", ReasonReady, MessageReady},
		{"no secret", crt, SecretState{}, now, 0, ReasonDoesNotExist, ReasonDoesNotExist, "Secret does not exist"},
		{"no data", crt, SecretState{Exists: true}, now, 0, ReasonMissingData, ReasonMissingData, "any data"},
		{"no key", crt, with(func(s *SecretState) { delete(s.Data, keyTLSKey) }), now, 0, ReasonMissingData, ReasonMissingData, "private key"},
		{"no cert", crt, with(func(s *SecretState) { delete(s.Data, keyTLSCert) }), now, 0, ReasonMissingData, ReasonMissingData, "a certificate"},
		{"bad key", crt, with(func(s *SecretState) { s.Data[keyTLSKey] = []byte("x") }), now, 0, ReasonInvalidKeyPair, ReasonInvalidKeyPair, "invalid private key"},
		{"bad cert", crt, with(func(s *SecretState) { s.Data[keyTLSCert] = []byte("x") }), now, 0, ReasonInvalidCertificate, ReasonInvalidCertificate, "invalid certificate"},
		{"key of another cert", crt, with(func(s *SecretState) { s.Data[keyTLSKey] = other.Data[keyTLSKey] }), now, 0, ReasonInvalidKeyPair, ReasonInvalidKeyPair, "does not match"},
		{"other issuer", crt, with(func(s *SecretState) { s.Annotations[annIssuerName] = "arca-selfsigned" }), now, 0, ReasonIncorrectIssuer, ReasonIncorrectIssuer, `"ClusterIssuer.cert-manager.io/arca-selfsigned"`},
		{"other issuer kind", crt, with(func(s *SecretState) { s.Annotations[annIssuerKind] = "" }), now, 0, ReasonIncorrectIssuer, ReasonIncorrectIssuer, "Issuer.cert-manager.io/arca-ca"},
		{"no issuer annotations", crt, with(func(s *SecretState) {
			delete(s.Annotations, annIssuerName)
			delete(s.Annotations, annIssuerKind)
			delete(s.Annotations, annIssuerGroup)
		}), now, 0, ReasonIncorrectIssuer, ReasonIncorrectIssuer, "previously issued"},
		{"other certificate", crt, with(func(s *SecretState) { s.Annotations[annCertificateName] = "x" }), now, 0, ReasonIncorrectCertificate, ReasonIncorrectCertificate, `issued for "x"`},
		{"key size changed", changed(func(c *Certificate) { c.Spec.PrivateKey = &PrivateKey{Algorithm: "ECDSA", Size: 384} }), good, now, 0, ReasonSecretMismatch, ReasonSecretMismatch, "spec.privateKey.size"},
		{"dnsNames changed", changed(func(c *Certificate) { c.Spec.DNSNames = []string{"other.test"} }), good, now, 0, ReasonRequestChanged, ReasonRequestChanged, "spec.dnsNames"},
		{"commonName changed", changed(func(c *Certificate) { c.Spec.CommonName = "x" }), good, now, 0, ReasonRequestChanged, ReasonRequestChanged, "spec.commonName"},
		{"isCA changed", changed(func(c *Certificate) { c.Spec.IsCA = true }), good, now, 0, ReasonRequestChanged, ReasonRequestChanged, "spec.isCA"},
		{"usages changed", changed(func(c *Certificate) { c.Spec.Usages = []string{"client auth"} }), good, now, 0, ReasonRequestChanged, ReasonRequestChanged, "spec.usages"},
		{"duration changed", changed(func(c *Certificate) { c.Spec.Duration = "100h"; c.duration = 100 * time.Hour }), good, now, 0, ReasonRequestChanged, ReasonRequestChanged, "spec.duration"},
		{"orgs changed", changed(func(c *Certificate) { c.Spec.Subject = &Subject{Organizations: []string{"X"}} }), good, now, 0, ReasonRequestChanged, ReasonRequestChanged, "spec.subject.organizations"},
		{"renewal due", crt, good, notAfter.Add(-720*time.Hour + time.Second), 0, ReasonRenewing, ReasonReady, MessageReady},
		{"just before renewal", crt, good, notAfter.Add(-720*time.Hour - 2*time.Second), 0, "", ReasonReady, MessageReady},
		{"expired", crt, good, notAfter.Add(time.Minute), 0, ReasonRenewing, ReasonExpired, "Certificate expired on"},
		{"renew-every due", crt, good, now.Add(time.Hour + time.Second), time.Hour, ReasonRenewing, ReasonReady, MessageReady},
		{"renew-every not yet", crt, good, now.Add(30 * time.Minute), time.Hour, "", ReasonReady, MessageReady},
		{"other data and labels ignored", crt, with(func(s *SecretState) { s.Data["extra"] = []byte("x"); s.Annotations["x"] = "y" }), now, 0, "", ReasonReady, MessageReady},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := Evaluate(tc.crt, tc.secret, tc.now, tc.renewEvery)
			if ev.Issue != (tc.issue != "") || ev.IssueReason != tc.issue {
				t.Errorf("issue %v %q (%s), want %q", ev.Issue, ev.IssueReason, ev.IssueMessage, tc.issue)
			}
			if ev.ReadyReason != tc.ready || ev.Ready != (tc.ready == ReasonReady) {
				t.Errorf("ready %v %q, want %q", ev.Ready, ev.ReadyReason, tc.ready)
			}
			if msg := ev.ReadyMessage + " | " + ev.IssueMessage; !strings.Contains(msg, tc.messagePart) {
				t.Errorf("messages %q, want %q in them", msg, tc.messagePart)
			}
		})
	}
}

func TestParseCertificateRejectsUnsupported(t *testing.T) {
	for _, spec := range []string{
		`{issuerRef: {name: i}, commonName: x}`,
		`{secretName: s, commonName: x}`,
		`{secretName: s, issuerRef: {name: i}, literalSubject: "CN=x"}`,
		`{secretName: s, issuerRef: {name: i}, keystores: {pkcs12: {create: true}}}`,
		`{secretName: s, issuerRef: {name: i}, duration: soon}`,
		`{secretName: s, issuerRef: {name: i}, usages: [bogus]}`,
	} {
		var m map[string]any
		if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(spec), 4096).Decode(&m); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseCertificate(&unstructured.Unstructured{Object: map[string]any{"spec": m}}); err == nil {
			t.Errorf("%s accepted", spec)
		}
	}
}
