//! A new key and a certificate signing request, for enrolling and for renewing: the key is
//! made here and never leaves this machine.

/// A new key (PEM) and a certificate signing request for `host` (DER).
pub fn request(host: &str) -> Result<(String, Vec<u8>), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}
