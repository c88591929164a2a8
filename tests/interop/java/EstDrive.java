// Drives Bouncy Castle's EST client (org.bouncycastle.est, as Java gateways such as Eclipse Kura
// use it) against a python-est server. Compiled and run by tests/interop/test_bouncycastle_est.py.
//
// Usage: EstDrive HOST PORT LABEL CA_PEM USER PASSWORD OUT_DIR
// Runs cacerts, csrattrs, simpleenroll (HTTP Basic), simplereenroll (the issued certificate as
// the TLS client certificate) and serverkeygen (HTTP Basic), writing PEM files to OUT_DIR and one
// "ok <operation> ..." line per step to stdout. Any failure ends with a stack trace, exit 1.
import java.io.FileReader;
import java.io.FileWriter;
import java.io.Writer;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Security;
import java.security.cert.Certificate;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.Collections;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.X509TrustManager;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.est.CACertsResponse;
import org.bouncycastle.est.CSRRequestResponse;
import org.bouncycastle.est.ESTService;
import org.bouncycastle.est.EnrollmentResponse;
import org.bouncycastle.est.HttpAuth;
import org.bouncycastle.est.jcajce.JcaHttpAuthBuilder;
import org.bouncycastle.est.jcajce.JcaJceUtils;
import org.bouncycastle.est.jcajce.JsseESTServiceBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.jsse.provider.BouncyCastleJsseProvider;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaMiscPEMGenerator;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;
import org.bouncycastle.util.io.pem.PemWriter;

public final class EstDrive {
    private static final JcaX509CertificateConverter CONVERT =
            new JcaX509CertificateConverter().setProvider("BC");

    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        Security.addProvider(new BouncyCastleJsseProvider());
        String host = args[0], label = args[2], user = args[4];
        int port = Integer.parseInt(args[1]);
        char[] password = args[5].toCharArray();
        Path out = Path.of(args[6]);
        X509Certificate anchor;
        try (PEMParser parser = new PEMParser(new FileReader(args[3]))) {
            anchor = CONVERT.getCertificate((X509CertificateHolder) parser.readObject());
        }
        X509TrustManager[] trust = JcaJceUtils.getCertPathTrustManager(
                Collections.singleton(new TrustAnchor(anchor, null)), null);
        String server = host + ":" + port;

        ESTService anonymous = builder(server, label, trust).build();
        CACertsResponse cacerts = anonymous.getCACerts();
        X509CertificateHolder[] chain = ESTService.storeToArray(cacerts.getCertificateStore());
        write(out.resolve("cacerts.pem"), chain);
        System.out.println("ok cacerts " + chain.length + " trusted=" + cacerts.isTrusted());

        CSRRequestResponse attrs = anonymous.getCSRAttributes();
        StringBuilder oids = new StringBuilder();
        if (attrs.hasAttributesResponse()) {
            for (ASN1ObjectIdentifier oid : attrs.getAttributesResponse().getRequirements()) {
                oids.append(' ').append(oid.getId());
            }
        }
        System.out.println("ok csrattrs" + oids);

        HttpAuth basic = new JcaHttpAuthBuilder(user, password).build();
        KeyPair first = newKey();
        EnrollmentResponse enrolled = anonymous.simpleEnroll(false, csr(user, first), basic);
        X509CertificateHolder issued = single(enrolled);
        write(out.resolve("enrolled.pem"), issued);
        System.out.println("ok simpleenroll " + issued.getSerialNumber().toString(16));

        ESTService withCert = builder(server, label, trust)
                .withKeyManagers(keyManagers(first.getPrivate(), CONVERT.getCertificate(issued)))
                .build();
        KeyPair second = newKey();
        EnrollmentResponse renewed = withCert.simpleEnroll(true, csr(user, second), null);
        X509CertificateHolder reissued = single(renewed);
        write(out.resolve("reenrolled.pem"), reissued);
        writeKey(out.resolve("reenrolled.key.pem"), second.getPrivate());
        System.out.println("ok simplereenroll " + reissued.getSerialNumber().toString(16));

        EnrollmentResponse generated =
                anonymous.simpleEnrollWithServersideCreation(csr(user, newKey()), basic);
        X509CertificateHolder keygenCert = single(generated);
        write(out.resolve("serverkeygen.pem"), keygenCert);
        PrivateKey keygenKey = new JcaPEMKeyConverter().setProvider("BC")
                .getPrivateKey(generated.getPrivateKeyInfo());
        writeKey(out.resolve("serverkeygen.key.pem"), keygenKey);
        System.out.println("ok serverkeygen " + keygenCert.getSerialNumber().toString(16));
    }

    private static JsseESTServiceBuilder builder(
            String server, String label, X509TrustManager[] trust) throws Exception {
        JsseESTServiceBuilder builder = new JsseESTServiceBuilder(server, trust);
        builder.withProvider(BouncyCastleJsseProvider.PROVIDER_NAME).withTimeout(20000);
        if (!label.isEmpty()) {
            builder.withLabel(label);
        }
        return builder;
    }

    private static KeyPair newKey() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC", "BC");
        generator.initialize(new ECGenParameterSpec("P-256"));
        return generator.generateKeyPair();
    }

    private static PKCS10CertificationRequest csr(String cn, KeyPair key) throws Exception {
        return new JcaPKCS10CertificationRequestBuilder(new X500Name("CN=" + cn), key.getPublic())
                .build(new JcaContentSignerBuilder("SHA256withECDSA").setProvider("BC")
                        .build(key.getPrivate()));
    }

    private static X509CertificateHolder single(EnrollmentResponse response) {
        if (!response.isCompleted()) {
            throw new IllegalStateException("enrollment not completed (HTTP 202?)");
        }
        X509CertificateHolder[] certs = ESTService.storeToArray(response.getStore());
        if (certs.length != 1) {
            throw new IllegalStateException("expected one certificate, got " + certs.length);
        }
        return certs[0];
    }

    private static javax.net.ssl.KeyManager[] keyManagers(PrivateKey key, X509Certificate cert)
            throws Exception {
        char[] secret = "changeit".toCharArray();
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        store.setKeyEntry("client", key, secret, new Certificate[] {cert});
        KeyManagerFactory factory = KeyManagerFactory.getInstance("PKIX", "BCJSSE");
        factory.init(store, secret);
        return factory.getKeyManagers();
    }

    private static void write(Path path, X509CertificateHolder... certs) throws Exception {
        try (Writer file = new FileWriter(path.toFile()); PemWriter pem = new PemWriter(file)) {
            for (X509CertificateHolder cert : certs) {
                pem.writeObject(new JcaMiscPEMGenerator(cert));
            }
        }
    }

    private static void writeKey(Path path, PrivateKey key) throws Exception {
        try (Writer file = new FileWriter(path.toFile()); PemWriter pem = new PemWriter(file)) {
            pem.writeObject(new JcaMiscPEMGenerator(key));
        }
    }
}
