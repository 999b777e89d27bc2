package main

// Issuance, as a pure function of a Certificate's spec, the issuer's material and the time, plus
// the checks that decide whether a Secret still holds a valid certificate for its spec. Everything
// here follows cert-manager v1.21 (github.com/cert-manager/cert-manager, module root): the
// certificate template of pkg/util/pki (GenerateCSR + CertificateTemplateFromCSR), the issuers of
// pkg/controller/certificaterequests/{selfsigned,ca}, the Secret layout of
// pkg/controller/certificates/issuing/internal/secret.go, the trigger and readiness policy chains
// of internal/controller/certificates/policies and pkg/util/pki/renewaltime.go.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Names cert-manager uses, from pkg/apis/certmanager/v1 and pkg/apis/meta/v1.
const (
	groupName = "cert-manager.io"

	secretTypeTLS = "kubernetes.io/tls"
	keyTLSCert    = "tls.crt"
	keyTLSKey     = "tls.key"
	keyCACert     = "ca.crt"

	labelPartOfController = "controller.cert-manager.io/fao"

	annCertificateName = "cert-manager.io/certificate-name"
	annIssuerName      = "cert-manager.io/issuer-name"
	annIssuerKind      = "cert-manager.io/issuer-kind"
	annIssuerGroup     = "cert-manager.io/issuer-group"

	annCommonName          = "cert-manager.io/common-name"
	annAltNames            = "cert-manager.io/alt-names"
	annIPSANs              = "cert-manager.io/ip-sans"
	annURISANs             = "cert-manager.io/uri-sans"
	annEmailSANs           = "cert-manager.io/email-sans"
	annSubjectSerialNumber = "cert-manager.io/subject-serialnumber"
	annSubjectOrgs         = "cert-manager.io/subject-organizations"
	annSubjectOrgUnits     = "cert-manager.io/subject-organizationalunits"
	annSubjectCountries    = "cert-manager.io/subject-countries"
	annSubjectProvinces    = "cert-manager.io/subject-provinces"
	annSubjectLocalities   = "cert-manager.io/subject-localities"
	annSubjectPostalCodes  = "cert-manager.io/subject-postalcodes"
	annSubjectStreets      = "cert-manager.io/subject-streetaddresses"

	// DefaultCertificateDuration is cert-manager's default spec.duration (90 days).
	DefaultCertificateDuration = 90 * 24 * time.Hour
)

// certificateDetailAnnotations are the Secret annotations derived from the issued certificate;
// cert-manager (server-side apply) drops those it no longer sets, so do we.
var certificateDetailAnnotations = []string{
	annCommonName, annAltNames, annIPSANs, annURISANs, annEmailSANs, annSubjectSerialNumber,
	annSubjectOrgs, annSubjectOrgUnits, annSubjectCountries, annSubjectProvinces,
	annSubjectLocalities, annSubjectPostalCodes, annSubjectStreets,
}

// Reasons of the Certificate conditions (internal/controller/certificates/policies/constants.go
// and the readiness controller).
const (
	ReasonDoesNotExist         = "DoesNotExist"
	ReasonMissingData          = "MissingData"
	ReasonInvalidKeyPair       = "InvalidKeyPair"
	ReasonInvalidCertificate   = "InvalidCertificate"
	ReasonSecretMismatch       = "SecretMismatch"
	ReasonIncorrectIssuer      = "IncorrectIssuer"
	ReasonIncorrectCertificate = "IncorrectCertificate"
	ReasonRequestChanged       = "RequestChanged"
	ReasonRenewing             = "Renewing"
	ReasonExpired              = "Expired"
	ReasonReady                = "Ready"

	MessageReady = "Certificate is up to date and has not expired"
)

// CertificateSpec is the part of a cert-manager.io/v1 Certificate's spec this stand-in honours
// (field names as in deploy/crds/cert-manager.io_certificates.yaml).
type CertificateSpec struct {
	SecretName     string   `json:"secretName"`
	CommonName     string   `json:"commonName,omitempty"`
	DNSNames       []string `json:"dnsNames,omitempty"`
	IPAddresses    []string `json:"ipAddresses,omitempty"`
	URIs           []string `json:"uris,omitempty"`
	EmailAddresses []string `json:"emailAddresses,omitempty"`
	Subject        *Subject `json:"subject,omitempty"`
	IsCA           bool     `json:"isCA,omitempty"`
	Usages         []string `json:"usages,omitempty"`
	// Duration, RenewBefore: Go durations (metav1.Duration).
	Duration              string          `json:"duration,omitempty"`
	RenewBefore           string          `json:"renewBefore,omitempty"`
	RenewBeforePercentage *int32          `json:"renewBeforePercentage,omitempty"`
	Renewal               *Renewal        `json:"renewal,omitempty"`
	PrivateKey            *PrivateKey     `json:"privateKey,omitempty"`
	IssuerRef             IssuerRef       `json:"issuerRef"`
	SecretTemplate        *SecretTemplate `json:"secretTemplate,omitempty"`

	// Fields that change the issued certificate or the Secret's content and that this stand-in
	// does not implement: a Certificate setting any of them is refused rather than half served.
	LiteralSubject          string `json:"literalSubject,omitempty"`
	OtherNames              []any  `json:"otherNames,omitempty"`
	NameConstraints         any    `json:"nameConstraints,omitempty"`
	Keystores               any    `json:"keystores,omitempty"`
	AdditionalOutputFormats []any  `json:"additionalOutputFormats,omitempty"`
}

// Subject holds the X.509 subject attributes besides the common name.
type Subject struct {
	Organizations       []string `json:"organizations,omitempty"`
	OrganizationalUnits []string `json:"organizationalUnits,omitempty"`
	Countries           []string `json:"countries,omitempty"`
	Provinces           []string `json:"provinces,omitempty"`
	Localities          []string `json:"localities,omitempty"`
	StreetAddresses     []string `json:"streetAddresses,omitempty"`
	PostalCodes         []string `json:"postalCodes,omitempty"`
	SerialNumber        string   `json:"serialNumber,omitempty"`
}

// Renewal is spec.renewal; only policy Disabled is acted upon (renewal windows are not implemented).
type Renewal struct {
	Policy  string `json:"policy,omitempty"`
	Windows []any  `json:"windows,omitempty"`
}

// PrivateKey is spec.privateKey.
type PrivateKey struct {
	Algorithm      string `json:"algorithm,omitempty"`      // RSA (default), ECDSA, Ed25519
	Size           int    `json:"size,omitempty"`           // RSA 2048 (default)/4096/8192; ECDSA 256 (default)/384/521
	Encoding       string `json:"encoding,omitempty"`       // PKCS1 (default), PKCS8
	RotationPolicy string `json:"rotationPolicy,omitempty"` // Always (default since v1.18), Never
}

// IssuerRef is spec.issuerRef.
type IssuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// EffectiveKind defaults an empty kind to Issuer, as cert-manager does.
func (r IssuerRef) EffectiveKind() string {
	if r.Kind == "" {
		return "Issuer"
	}
	return r.Kind
}

// EffectiveGroup defaults an empty group to cert-manager.io, as cert-manager does.
func (r IssuerRef) EffectiveGroup() string {
	if r.Group == "" {
		return groupName
	}
	return r.Group
}

func (r IssuerRef) String() string {
	return fmt.Sprintf("%s.%s/%s", r.EffectiveKind(), r.EffectiveGroup(), r.Name)
}

// SecretTemplate is spec.secretTemplate.
type SecretTemplate struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Certificate is a parsed Certificate object: identity plus spec.
type Certificate struct {
	Namespace  string
	Name       string
	Generation int64
	Spec       CertificateSpec

	duration    time.Duration
	renewBefore *time.Duration
}

// ParseCertificate reads a Certificate from its unstructured form and validates the parts the
// stand-in relies on (cert-manager's admission webhook would reject most of these errors).
func ParseCertificate(u *unstructured.Unstructured) (*Certificate, error) {
	raw, err := json.Marshal(u.Object["spec"])
	if err != nil {
		return nil, err
	}
	c := &Certificate{Namespace: u.GetNamespace(), Name: u.GetName(), Generation: u.GetGeneration()}
	if err := json.Unmarshal(raw, &c.Spec); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	s := &c.Spec
	switch {
	case s.SecretName == "":
		return nil, errors.New("spec.secretName is required")
	case s.IssuerRef.Name == "":
		return nil, errors.New("spec.issuerRef.name is required")
	case s.LiteralSubject != "":
		return nil, errors.New("spec.literalSubject is not supported by this stand-in")
	case len(s.OtherNames) > 0:
		return nil, errors.New("spec.otherNames is not supported by this stand-in")
	case s.NameConstraints != nil:
		return nil, errors.New("spec.nameConstraints is not supported by this stand-in")
	case s.Keystores != nil:
		return nil, errors.New("spec.keystores is not supported by this stand-in")
	case len(s.AdditionalOutputFormats) > 0:
		return nil, errors.New("spec.additionalOutputFormats is not supported by this stand-in")
	case s.Renewal != nil && len(s.Renewal.Windows) > 0:
		return nil, errors.New("spec.renewal.windows is not supported by this stand-in")
	}
	c.duration = DefaultCertificateDuration
	if s.Duration != "" {
		if c.duration, err = time.ParseDuration(s.Duration); err != nil {
			return nil, fmt.Errorf("spec.duration: %w", err)
		}
		if c.duration <= 0 {
			return nil, errors.New("spec.duration must be positive")
		}
	}
	if s.RenewBefore != "" {
		d, err := time.ParseDuration(s.RenewBefore)
		if err != nil {
			return nil, fmt.Errorf("spec.renewBefore: %w", err)
		}
		c.renewBefore = &d
	}
	if _, _, err := KeyUsages(s.Usages, s.IsCA); err != nil {
		return nil, fmt.Errorf("spec.usages: %w", err)
	}
	return c, nil
}

// Key returns the namespace/name of the Certificate.
func (c *Certificate) Key() string { return c.Namespace + "/" + c.Name }

func (c *Certificate) privateKey() PrivateKey {
	if c.Spec.PrivateKey == nil {
		return PrivateKey{}
	}
	return *c.Spec.PrivateKey
}

func (c *Certificate) subject() Subject {
	if c.Spec.Subject == nil {
		return Subject{}
	}
	return *c.Spec.Subject
}

// KeyUsages maps cert-manager usage names to X.509 key usages and extended key usages
// (pkg/api/util/usages.go, pki.KeyUsagesForCertificateOrCertificateRequest): a CA always gets
// "cert sign"; no usages means "digital signature" + "key encipherment".
func KeyUsages(usages []string, isCA bool) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	var ku x509.KeyUsage
	var eku []x509.ExtKeyUsage
	if isCA {
		ku |= x509.KeyUsageCertSign
	}
	if len(usages) == 0 {
		usages = []string{"digital signature", "key encipherment"}
	}
	var unknown []string
	for _, u := range usages {
		if k, ok := keyUsageNames[u]; ok {
			ku |= k
		} else if e, ok := extKeyUsageNames[u]; ok {
			eku = append(eku, e)
		} else {
			unknown = append(unknown, u)
		}
	}
	if len(unknown) > 0 {
		return 0, nil, fmt.Errorf("unknown key usages: %v", unknown)
	}
	return ku, eku, nil
}

var keyUsageNames = map[string]x509.KeyUsage{
	"signing":            x509.KeyUsageDigitalSignature,
	"digital signature":  x509.KeyUsageDigitalSignature,
	"content commitment": x509.KeyUsageContentCommitment,
	"key encipherment":   x509.KeyUsageKeyEncipherment,
	"key agreement":      x509.KeyUsageKeyAgreement,
	"data encipherment":  x509.KeyUsageDataEncipherment,
	"cert sign":          x509.KeyUsageCertSign,
	"crl sign":           x509.KeyUsageCRLSign,
	"encipher only":      x509.KeyUsageEncipherOnly,
	"decipher only":      x509.KeyUsageDecipherOnly,
}

var extKeyUsageNames = map[string]x509.ExtKeyUsage{
	"any":              x509.ExtKeyUsageAny,
	"server auth":      x509.ExtKeyUsageServerAuth,
	"client auth":      x509.ExtKeyUsageClientAuth,
	"code signing":     x509.ExtKeyUsageCodeSigning,
	"email protection": x509.ExtKeyUsageEmailProtection,
	"s/mime":           x509.ExtKeyUsageEmailProtection,
	"ipsec end system": x509.ExtKeyUsageIPSECEndSystem,
	"ipsec tunnel":     x509.ExtKeyUsageIPSECTunnel,
	"ipsec user":       x509.ExtKeyUsageIPSECUser,
	"timestamping":     x509.ExtKeyUsageTimeStamping,
	"ocsp signing":     x509.ExtKeyUsageOCSPSigning,
	"microsoft sgc":    x509.ExtKeyUsageMicrosoftServerGatedCrypto,
	"netscape sgc":     x509.ExtKeyUsageNetscapeServerGatedCrypto,
}

// ---- keys ----

// GenerateKey makes a private key for spec.privateKey (pki.GeneratePrivateKeyForCertificate):
// RSA 2048 unless told otherwise.
func GenerateKey(pk PrivateKey) (crypto.Signer, error) {
	switch pk.Algorithm {
	case "", "RSA":
		size := 2048
		if pk.Size > 0 {
			size = pk.Size
		}
		if size < 2048 || size > 8192 {
			return nil, fmt.Errorf("unsupported RSA key size %d (2048..8192)", size)
		}
		return rsa.GenerateKey(rand.Reader, size)
	case "ECDSA":
		var curve elliptic.Curve
		switch pk.Size {
		case 0, 256:
			curve = elliptic.P256()
		case 384:
			curve = elliptic.P384()
		case 521:
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported ECDSA key size %d (256, 384 or 521)", pk.Size)
		}
		return ecdsa.GenerateKey(curve, rand.Reader)
	case "Ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	default:
		return nil, fmt.Errorf("unsupported private key algorithm %q", pk.Algorithm)
	}
}

// EncodeKey PEM-encodes a private key (pki.EncodePrivateKey): PKCS1 (default) means PKCS#1
// "RSA PRIVATE KEY" for RSA, SEC 1 "EC PRIVATE KEY" for ECDSA and PKCS#8 for Ed25519; PKCS8 means
// "PRIVATE KEY" for all.
func EncodeKey(key crypto.Signer, encoding string) ([]byte, error) {
	var block *pem.Block
	switch encoding {
	case "", "PKCS1":
		switch k := key.(type) {
		case *rsa.PrivateKey:
			block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				return nil, err
			}
			block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
		case ed25519.PrivateKey:
			return EncodeKey(key, "PKCS8")
		default:
			return nil, fmt.Errorf("unknown key type %T", key)
		}
	case "PKCS8":
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	default:
		return nil, fmt.Errorf("unknown private key encoding %q", encoding)
	}
	return pem.EncodeToMemory(block), nil
}

// DecodeKey parses the first PEM private key (PKCS#1, SEC 1 or PKCS#8).
func DecodeKey(data []byte) (crypto.Signer, error) {
	var block *pem.Block
	for rest := data; ; {
		if block, rest = pem.Decode(rest); block == nil || strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
	}
	if block == nil {
		return nil, errors.New("error decoding private key PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("error parsing pkcs#8 private key: %w", err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("error parsing pkcs#8 private key: invalid key type")
		}
		return s, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("error parsing ecdsa private key: %w", err)
		}
		return k, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("error parsing rsa private key: %w", err)
		}
		return k, k.Validate()
	default:
		return nil, fmt.Errorf("unknown private key type: %s", block.Type)
	}
}

// KeyMatchesSpec lists the spec.privateKey fields the key does not satisfy (pki.PrivateKeyMatchesSpec).
func KeyMatchesSpec(key crypto.Signer, pk PrivateKey) []string {
	switch pk.Algorithm {
	case "", "RSA":
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return []string{"spec.privateKey.algorithm"}
		}
		size := 2048
		if pk.Size > 0 {
			size = pk.Size
		}
		if k.N.BitLen() != size {
			return []string{"spec.privateKey.size"}
		}
	case "ECDSA":
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return []string{"spec.privateKey.algorithm"}
		}
		size := 256
		if pk.Size > 0 {
			size = pk.Size
		}
		if k.Curve.Params().BitSize != size {
			return []string{"spec.privateKey.size"}
		}
	case "Ed25519":
		if _, ok := key.(ed25519.PrivateKey); !ok {
			return []string{"spec.privateKey.algorithm"}
		}
	default:
		return []string{"spec.privateKey.algorithm"}
	}
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// signatureAlgorithm picks the signature algorithm from the signer's key, as cert-manager's
// pki.SignCertificate does (RSA: by modulus size; ECDSA: by curve).
func signatureAlgorithm(signer crypto.Signer) (x509.SignatureAlgorithm, error) {
	switch k := signer.Public().(type) {
	case *rsa.PublicKey:
		switch bits := k.Size() * 8; {
		case bits >= 4096:
			return x509.SHA512WithRSA, nil
		case bits >= 3072:
			return x509.SHA384WithRSA, nil
		case bits >= 2048:
			return x509.SHA256WithRSA, nil
		default:
			return 0, fmt.Errorf("invalid size %d for RSA key on signing certificate", bits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return x509.ECDSAWithSHA256, nil
		case elliptic.P384():
			return x509.ECDSAWithSHA384, nil
		case elliptic.P521():
			return x509.ECDSAWithSHA512, nil
		}
		return 0, errors.New("unsupported curve on signing key")
	case ed25519.PublicKey:
		return x509.PureEd25519, nil
	}
	return 0, fmt.Errorf("unsupported signing key type %T", signer)
}

// ---- certificates ----

// DecodeCertificates parses every CERTIFICATE block of a PEM bundle, in order.
func DecodeCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("error parsing TLS certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("error decoding certificate PEM block")
	}
	return certs, nil
}

func encodeCertificates(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// Template builds the certificate to sign for a Certificate spec, as cert-manager does (CSR from
// GenerateCSR, then CertificateTemplateFromCSR with duration, basic constraints and key usages
// overridden from the spec). The serial number is left to crypto/x509 (random, RFC 5280).
func Template(c *Certificate, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	s := &c.Spec
	subj := c.subject()
	var ips []net.IP
	for _, v := range s.IPAddresses {
		ip := net.ParseIP(v)
		if ip == nil {
			return nil, fmt.Errorf("invalid IP address %q", v)
		}
		ips = append(ips, ip)
	}
	var uris []*url.URL
	for _, v := range s.URIs {
		u, err := url.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("invalid URI %q: %w", v, err)
		}
		uris = append(uris, u)
	}
	if s.CommonName == "" && len(s.DNSNames) == 0 && len(ips) == 0 && len(uris) == 0 && len(s.EmailAddresses) == 0 {
		return nil, errors.New("at least one of commonName, dnsNames, emailAddresses, ipAddresses or uris must be set")
	}
	ku, eku, err := KeyUsages(s.Usages, s.IsCA)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         s.CommonName,
			Organization:       subj.Organizations,
			OrganizationalUnit: subj.OrganizationalUnits,
			Country:            subj.Countries,
			Province:           subj.Provinces,
			Locality:           subj.Localities,
			StreetAddress:      subj.StreetAddresses,
			PostalCode:         subj.PostalCodes,
			SerialNumber:       subj.SerialNumber,
		},
		// crypto/x509 marks the SAN extension critical when the subject is empty, as cert-manager does.
		DNSNames:              s.DNSNames,
		IPAddresses:           ips,
		URIs:                  uris,
		EmailAddresses:        s.EmailAddresses,
		PublicKey:             pub,
		NotBefore:             now,
		NotAfter:              now.Add(c.duration),
		BasicConstraintsValid: true,
		IsCA:                  s.IsCA,
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
	}, nil
}

// Issuer is what an issuer signs with.
type Issuer struct {
	// SelfSigned: the certificate is signed by its own key (issuer selfSigned: {}).
	SelfSigned bool
	// CA issuer: the CA Secret's tls.crt chain followed by its ca.crt (if any), and tls.key.
	CACerts []*x509.Certificate
	CAKey   crypto.Signer
	// Extensions the issuer spec adds (selfSigned: crlDistributionPoints; ca: also ocspServers,
	// issuingCertificateURLs).
	CRLDistributionPoints  []string
	OCSPServers            []string
	IssuingCertificateURLs []string
}

// CAIssuerFromSecret reads a CA issuer's key pair from its Secret's data, with cert-manager's
// error texts (pkg/util/kube/pki.go) so that they can go into the Issuer's Ready condition.
func CAIssuerFromSecret(namespace, name string, data map[string][]byte) (*Issuer, error) {
	certPEM, ok := data[keyTLSCert]
	if !ok {
		return nil, fmt.Errorf("no data for %q in secret '%s/%s'", keyTLSCert, namespace, name)
	}
	certs, err := DecodeCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	keyPEM, ok := data[keyTLSKey]
	if !ok {
		return nil, fmt.Errorf("no data for %q in secret '%s/%s'", keyTLSKey, namespace, name)
	}
	key, err := DecodeKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if caPEM := data[keyCACert]; len(caPEM) > 0 {
		ca, err := DecodeCertificates(caPEM)
		if err != nil {
			return nil, err
		}
		certs = append(certs, ca[0])
	}
	return &Issuer{CACerts: certs, CAKey: key}, nil
}

// Issued is the result of one issuance.
type Issued struct {
	Key       crypto.Signer
	KeyReused bool
	Cert      *x509.Certificate
	// Data is the Secret data cert-manager writes: tls.crt (leaf, then the chain without a
	// self-signed root), tls.key (spec.privateKey.encoding) and ca.crt.
	Data map[string][]byte
}

// ErrKeyNeedsIntervention: rotationPolicy Never and the Secret's key does not fit the spec.
var ErrKeyNeedsIntervention = errors.New("existing private key does not match spec.privateKey and rotationPolicy is Never")

// Issue issues a certificate for c with iss at time now. existingKey is the Secret's current tls.key
// (may be empty): with rotationPolicy Never it is reused if it parses and fits spec.privateKey
// (a key that does not parse is replaced, one that does not fit is an error, as in cert-manager's
// keymanager); with Always (the default) a new key is generated.
func Issue(c *Certificate, iss *Issuer, existingKey []byte, now time.Time) (*Issued, error) {
	pk := c.privateKey()
	out := &Issued{}
	if pk.RotationPolicy == "Never" && len(existingKey) > 0 {
		if k, err := DecodeKey(existingKey); err == nil {
			if v := KeyMatchesSpec(k, pk); len(v) > 0 {
				return nil, fmt.Errorf("%w: mismatching fields %v", ErrKeyNeedsIntervention, v)
			}
			out.Key, out.KeyReused = k, true
		}
	}
	if out.Key == nil {
		k, err := GenerateKey(pk)
		if err != nil {
			return nil, err
		}
		out.Key = k
	}
	keyPEM, err := EncodeKey(out.Key, pk.Encoding)
	if err != nil {
		return nil, err
	}
	tmpl, err := Template(c, out.Key.Public(), now)
	if err != nil {
		return nil, err
	}
	tmpl.CRLDistributionPoints = iss.CRLDistributionPoints

	var chainPEM, caPEM []byte
	if iss.SelfSigned {
		if tmpl.SignatureAlgorithm, err = signatureAlgorithm(out.Key); err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, out.Key.Public(), out.Key)
		if err != nil {
			return nil, fmt.Errorf("error signing certificate: %w", err)
		}
		if out.Cert, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
		chainPEM = encodeCertificates(out.Cert)
		caPEM = chainPEM
	} else {
		if len(iss.CACerts) == 0 || iss.CAKey == nil {
			return nil, errors.New("no CA certificate or key to sign with")
		}
		tmpl.OCSPServer = iss.OCSPServers
		tmpl.IssuingCertificateURL = iss.IssuingCertificateURLs
		if tmpl.SignatureAlgorithm, err = signatureAlgorithm(iss.CAKey); err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.CACerts[0], out.Key.Public(), iss.CAKey)
		if err != nil {
			return nil, fmt.Errorf("error signing certificate: %w", err)
		}
		if out.Cert, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
		if chainPEM, caPEM, err = ChainBundle(append(slices.Clone(iss.CACerts), out.Cert)); err != nil {
			return nil, err
		}
	}
	out.Data = map[string][]byte{keyTLSCert: chainPEM, keyTLSKey: keyPEM}
	if len(caPEM) > 0 {
		out.Data[keyCACert] = caPEM
	}
	return out, nil
}

// ChainBundle orders certificates given in any order (duplicates allowed) into one chain and
// returns tls.crt (leaf first, up to but excluding a self-signed root) and ca.crt (the root, or the
// top of the chain if that is not self-signed; for a lone self-signed certificate both are it).
// It is cert-manager's pki.ParseSingleCertificateChain, which its CA issuer applies to
// CA chain + new leaf.
func ChainBundle(certs []*x509.Certificate) (chainPEM, caPEM []byte, err error) {
	uniq := slices.Clone(certs)
	slices.SortFunc(uniq, func(a, b *x509.Certificate) int { return bytes.Compare(a.Raw, b.Raw) })
	uniq = slices.CompactFunc(uniq, func(a, b *x509.Certificate) bool { return bytes.Equal(a.Raw, b.Raw) })
	type node struct {
		cert   *x509.Certificate
		issuer *node
	}
	root := func(n *node) *node {
		for n.issuer != nil {
			n = n.issuer
		}
		return n
	}
	issues := func(parent, child *x509.Certificate) bool {
		return bytes.Equal(child.RawIssuer, parent.RawSubject) && child.CheckSignatureFrom(parent) == nil
	}
	var chains []*node
	for _, c := range uniq {
		chains = append(chains, &node{cert: c})
	}
	for len(chains) > 1 {
		last := chains[len(chains)-1]
		chains = chains[:len(chains)-1]
		merged := false
		for i, other := range chains {
			if r := root(other); issues(last.cert, r.cert) {
				r.issuer = last
				merged = true
			} else if r := root(last); issues(other.cert, r.cert) {
				r.issuer = other
				chains[i] = last
				merged = true
			}
			if merged {
				break
			}
		}
		if !merged {
			return nil, nil, errors.New("certificate chain is malformed or broken")
		}
	}
	var chain []*x509.Certificate
	n := chains[0]
	for n.issuer != nil {
		chain = append(chain, n.cert)
		n = n.issuer
	}
	top := n.cert
	selfSigned := top.CheckSignatureFrom(top) == nil
	if len(chain) == 0 {
		if selfSigned {
			p := encodeCertificates(top)
			return p, p, nil
		}
		return encodeCertificates(top), nil, nil
	}
	if !selfSigned {
		chain = append(chain, top)
	}
	return encodeCertificates(chain...), encodeCertificates(top), nil
}

// ---- Secret metadata ----

func joinCSV(values []string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write(values)
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// SecretMetadata returns the labels and annotations cert-manager puts on a Certificate's Secret:
// the secretTemplate's, the certificate details (AnnotationsForCertificate), certificate-name,
// issuer-name/-kind/-group (spec.issuerRef as written) and the label controller.cert-manager.io/fao.
func SecretMetadata(c *Certificate, cert *x509.Certificate) (labels, annotations map[string]string) {
	labels, annotations = map[string]string{}, map[string]string{}
	if t := c.Spec.SecretTemplate; t != nil {
		maps.Copy(labels, t.Labels)
		maps.Copy(annotations, t.Annotations)
	}
	if cert != nil {
		maps.Copy(annotations, CertificateAnnotations(cert))
	}
	annotations[annCertificateName] = c.Name
	annotations[annIssuerName] = c.Spec.IssuerRef.Name
	annotations[annIssuerKind] = c.Spec.IssuerRef.Kind
	annotations[annIssuerGroup] = c.Spec.IssuerRef.Group
	labels[labelPartOfController] = "true"
	return labels, annotations
}

// CertificateAnnotations are the certificate-details annotations (common-name, alt-names, ip-sans
// and uri-sans always; the others only when non-empty).
func CertificateAnnotations(cert *x509.Certificate) map[string]string {
	a := map[string]string{}
	str := func(keep bool, k, v string) {
		if v != "" || keep {
			a[k] = v
		}
	}
	list := func(keep bool, k string, v []string) {
		if len(v) > 0 || keep {
			a[k] = joinCSV(v)
		}
	}
	str(true, annCommonName, cert.Subject.CommonName)
	str(false, annSubjectSerialNumber, cert.Subject.SerialNumber)
	list(false, annSubjectOrgs, cert.Subject.Organization)
	list(false, annSubjectOrgUnits, cert.Subject.OrganizationalUnit)
	list(false, annSubjectCountries, cert.Subject.Country)
	list(false, annSubjectProvinces, cert.Subject.Province)
	list(false, annSubjectLocalities, cert.Subject.Locality)
	list(false, annSubjectPostalCodes, cert.Subject.PostalCode)
	list(false, annSubjectStreets, cert.Subject.StreetAddress)
	list(false, annEmailSANs, cert.EmailAddresses)
	list(true, annAltNames, cert.DNSNames)
	var ips, uris []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	for _, u := range cert.URIs {
		uris = append(uris, u.String())
	}
	list(true, annIPSANs, ips)
	list(true, annURISANs, uris)
	return a
}

// ---- evaluation: does the Secret hold a current certificate for the spec? ----

// SecretState is what the checks see of the target Secret.
type SecretState struct {
	Exists      bool
	Data        map[string][]byte
	Annotations map[string]string
}

// Evaluation is the outcome of the trigger and readiness policy chains for one Certificate.
type Evaluation struct {
	// Issue: a (re-)issuance is due, for IssueReason/IssueMessage (the Issuing condition).
	Issue        bool
	IssueReason  string
	IssueMessage string
	// Ready condition.
	Ready        bool
	ReadyReason  string
	ReadyMessage string
	// Cert is the leaf in the Secret's tls.crt when it parses (status notBefore/notAfter come from
	// it even when another check fails); RenewalTime is its renewal time (nil: renewal disabled).
	Cert        *x509.Certificate
	RenewalTime *time.Time
}

// RenewalTime is pki.RenewalTime without windows: notAfter − renewBefore (when set and shorter
// than the lifetime), else − renewBeforePercentage of the lifetime, else − a third of it; truncated
// to the second. renewEvery > 0 (a lab flag, not cert-manager's) caps it at notBefore + renewEvery.
func RenewalTime(c *Certificate, notBefore, notAfter time.Time, renewEvery time.Duration) *time.Time {
	var rt time.Time
	if c.Spec.Renewal == nil || c.Spec.Renewal.Policy != "Disabled" {
		life := notAfter.Sub(notBefore)
		before := life / 3
		if rb := c.renewBefore; rb != nil && *rb > 0 && *rb < life {
			before = *rb
		} else if p := c.Spec.RenewBeforePercentage; p != nil && *p > 0 && *p < 100 {
			before = time.Duration(float64(life) * float64(*p) / 100)
		}
		rt = notAfter.Add(-before).Truncate(time.Second)
	}
	if renewEvery > 0 {
		if forced := notBefore.Add(renewEvery).Truncate(time.Second); rt.IsZero() || forced.Before(rt) {
			rt = forced
		}
	}
	if rt.IsZero() {
		return nil
	}
	return &rt
}

// Evaluate runs cert-manager's checks, in its order, against the Secret: existence, data, key pair,
// issuer and certificate-name annotations, key vs spec.privateKey, certificate vs spec (cert-manager
// compares the spec with the CertificateRequest that issued the certificate; without
// CertificateRequests we compare with the certificate itself), then renewal time (trigger) and
// expiry (readiness).
func Evaluate(c *Certificate, s SecretState, now time.Time, renewEvery time.Duration) Evaluation {
	var ev Evaluation
	fail := func(reason, msg string) Evaluation {
		ev.Issue, ev.IssueReason, ev.IssueMessage = true, reason, msg
		ev.Ready, ev.ReadyReason, ev.ReadyMessage = false, reason, msg
		return ev
	}
	if !s.Exists {
		return fail(ReasonDoesNotExist, "Issuing certificate as Secret does not exist")
	}
	if certs, err := DecodeCertificates(s.Data[keyTLSCert]); err == nil {
		ev.Cert = certs[0]
		ev.RenewalTime = RenewalTime(c, ev.Cert.NotBefore, ev.Cert.NotAfter, renewEvery)
	}
	switch {
	case s.Data == nil:
		return fail(ReasonMissingData, "Issuing certificate as Secret does not contain any data")
	case len(s.Data[keyTLSKey]) == 0:
		return fail(ReasonMissingData, "Issuing certificate as Secret does not contain a private key")
	case len(s.Data[keyTLSCert]) == 0:
		return fail(ReasonMissingData, "Issuing certificate as Secret does not contain a certificate")
	}
	key, err := DecodeKey(s.Data[keyTLSKey])
	if err != nil {
		return fail(ReasonInvalidKeyPair, fmt.Sprintf("Issuing certificate as Secret contains invalid private key data: %v", err))
	}
	if ev.Cert == nil {
		_, err := DecodeCertificates(s.Data[keyTLSCert])
		return fail(ReasonInvalidCertificate, fmt.Sprintf("Issuing certificate as Secret contains an invalid certificate: %v", err))
	}
	if !publicKeysEqual(key.Public(), ev.Cert.PublicKey) {
		return fail(ReasonInvalidKeyPair, "Issuing certificate as Secret contains a private key that does not match the certificate")
	}
	name, hasName := s.Annotations[annIssuerName]
	kind, hasKind := s.Annotations[annIssuerKind]
	group, hasGroup := s.Annotations[annIssuerGroup]
	ref := c.Spec.IssuerRef
	if ((hasName || hasKind || hasGroup) && name != ref.Name) ||
		(IssuerRef{Kind: kind}).EffectiveKind() != ref.EffectiveKind() ||
		(IssuerRef{Group: group}).EffectiveGroup() != ref.EffectiveGroup() {
		return fail(ReasonIncorrectIssuer, fmt.Sprintf("Issuing certificate as Secret was previously issued by %q", IssuerRef{name, kind, group}.String()))
	}
	if n, ok := s.Annotations[annCertificateName]; ok && n != c.Name {
		return fail(ReasonIncorrectCertificate, fmt.Sprintf("Secret was issued for %q. If this message is not transient, you might have two conflicting Certificates pointing to the same secret.", n))
	}
	if v := KeyMatchesSpec(key, c.privateKey()); len(v) > 0 {
		return fail(ReasonSecretMismatch, fmt.Sprintf("Existing private key is not up to date for spec: %v", v))
	}
	if v := CertificateMatchesSpec(ev.Cert, c); len(v) > 0 {
		return fail(ReasonRequestChanged, fmt.Sprintf("Fields on existing certificate not up to date: %v", v))
	}
	ev.Ready, ev.ReadyReason, ev.ReadyMessage = true, ReasonReady, MessageReady
	if now.After(ev.Cert.NotAfter) {
		ev.Ready, ev.ReadyReason = false, ReasonExpired
		ev.ReadyMessage = fmt.Sprintf("Certificate expired on %s", ev.Cert.NotAfter.Format(time.RFC1123))
	}
	if ev.RenewalTime != nil && !ev.RenewalTime.After(now) {
		ev.Issue, ev.IssueReason = true, ReasonRenewing
		ev.IssueMessage = fmt.Sprintf("Renewing certificate as renewal was scheduled at %s", ev.RenewalTime.UTC())
	}
	return ev
}

// CertificateMatchesSpec lists the spec fields the issued certificate does not reflect (the fields
// of pki.RequestMatchesSpec; usages via the certificate's key usages; duration within a second, and
// only when spec.duration is set, as cert-manager only compares explicit durations).
func CertificateMatchesSpec(cert *x509.Certificate, c *Certificate) []string {
	s := &c.Spec
	subj := c.subject()
	var v []string
	check := func(ok bool, field string) {
		if !ok {
			v = append(v, field)
		}
	}
	var certIPs, specIPs []string
	for _, ip := range cert.IPAddresses {
		certIPs = append(certIPs, ip.String())
	}
	for _, ip := range s.IPAddresses {
		if p := net.ParseIP(ip); p != nil {
			specIPs = append(specIPs, p.String())
		} else {
			specIPs = append(specIPs, ip)
		}
	}
	var certURIs []string
	for _, u := range cert.URIs {
		certURIs = append(certURIs, u.String())
	}
	check(sameSet(certIPs, specIPs), "spec.ipAddresses")
	check(sameSet(certURIs, s.URIs), "spec.uris")
	check(sameSet(cert.EmailAddresses, s.EmailAddresses), "spec.emailAddresses")
	check(sameSet(cert.DNSNames, s.DNSNames), "spec.dnsNames")
	check(cert.Subject.CommonName == s.CommonName, "spec.commonName")
	check(cert.Subject.SerialNumber == subj.SerialNumber, "spec.subject.serialNumber")
	check(sameSet(cert.Subject.Organization, subj.Organizations), "spec.subject.organizations")
	check(sameSet(cert.Subject.Country, subj.Countries), "spec.subject.countries")
	check(sameSet(cert.Subject.Locality, subj.Localities), "spec.subject.localities")
	check(sameSet(cert.Subject.OrganizationalUnit, subj.OrganizationalUnits), "spec.subject.organizationalUnits")
	check(sameSet(cert.Subject.PostalCode, subj.PostalCodes), "spec.subject.postCodes")
	check(sameSet(cert.Subject.Province, subj.Provinces), "spec.subject.provinces")
	check(sameSet(cert.Subject.StreetAddress, subj.StreetAddresses), "spec.subject.streetAddresses")
	check(cert.IsCA == s.IsCA, "spec.isCA")
	ku, eku, _ := KeyUsages(s.Usages, s.IsCA)
	check(cert.KeyUsage == ku && sameEKUs(cert.ExtKeyUsage, eku), "spec.usages")
	if s.Duration != "" {
		d := cert.NotAfter.Sub(cert.NotBefore) - c.duration
		check(d > -time.Second && d < time.Second, "spec.duration")
	}
	return v
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sameEKUs(a, b []x509.ExtKeyUsage) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
