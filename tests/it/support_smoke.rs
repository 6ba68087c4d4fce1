//! Checks the shared test harnesses themselves (TLS material is well formed).

use crate::support;

#[test]
fn pki_files_are_pem() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(dir.path());
    for p in [&pki.ca_path, &pki.server_cert, &pki.client_cert] {
        assert!(
            std::fs::read_to_string(p)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
    }
    assert!(
        std::fs::read_to_string(&pki.server_key)
            .unwrap()
            .contains("PRIVATE KEY")
    );
}
