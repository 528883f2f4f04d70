use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

#[test]
fn host_id_comes_from_the_common_name() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["web-1".into()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "web-1");
    let cert = params.self_signed(&key).unwrap();
    assert_eq!(cert_host_id(cert.der()).unwrap().as_str(), "web-1");

    let mut params = CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "not a host");
    let cert = params.self_signed(&key).unwrap();
    assert!(cert_host_id(cert.der()).is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_name_reader(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)
    ) {
        let _ = der::subject_common_name(&bytes);
        let _ = der::validity(&bytes);
    }
}

#[test]
fn validity_and_fingerprint_are_read_from_the_certificate() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![]).unwrap();
    // 2049 is still UTCTime, 2050 GeneralizedTime.
    params.not_before = rcgen::date_time_ymd(2026, 2, 28);
    params.not_after = rcgen::date_time_ymd(2050, 3, 1);
    let cert = params.self_signed(&key).unwrap();
    assert_eq!(
        cert_validity(cert.der()),
        Some((1_772_236_800, 2_529_705_600))
    );
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let cert = params.self_signed(&key).unwrap();
    assert_eq!(cert_validity(cert.der()).unwrap().1, 2_524_521_600);
    let fp = fingerprint(cert.der());
    assert_eq!(fp.len(), 64);
    let colons = fp
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(normalize_fingerprint(&colons).as_deref(), Some(fp.as_str()));
    assert_eq!(
        normalize_fingerprint(&format!("sha256:{fp}")).as_deref(),
        Some(fp.as_str())
    );
    assert_eq!(normalize_fingerprint("abcd"), None);
    assert!(pinned_client_config("not-a-fingerprint").is_err());
}

#[test]
fn truncated_certificates_have_no_name() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "nines");
    params
        .distinguished_name
        .push(DnType::CommonName, "db-7.example.net");
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().as_ref();
    assert_eq!(der::subject_common_name(der), Some("db-7.example.net"));
    for cut in 0..der.len() - 1 {
        // Cutting anywhere either loses the name or (past the subject) keeps it intact.
        let name = der::subject_common_name(&der[..cut]);
        assert!(name.is_none() || name == Some("db-7.example.net"));
    }
}

#[test]
fn configs_build_and_refuse_garbage() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(vec![]).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca = ca_cert;
    let (ca_pem, cert_pem, key_pem) = (ca.pem(), leaf.pem(), key.serialize_pem());
    let server = server_config(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    assert_eq!(server.alpn_protocols, vec![ALPN.to_vec()]);
    assert!(client_config(ca_pem.as_bytes(), cert_pem.as_bytes(), key_pem.as_bytes()).is_ok());
    assert!(matches!(
        server_config(b"nothing", cert_pem.as_bytes(), key_pem.as_bytes()),
        Err(TlsError::NoCertificate { .. })
    ));
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    assert!(
        server_config(ca_pem.as_bytes(), cert_pem.as_bytes(), other_key.as_bytes()).is_err(),
        "a key that does not match the certificate is refused"
    );
}
