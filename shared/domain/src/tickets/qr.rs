//! QR code images of ticket payloads.
//!
//! Error-correction level M (15 % of the code may be damaged), the smallest version that
//! holds the payload but never above [`MAX_VERSION`] (version 10 is 57×57 modules, easy to
//! scan from a phone screen or paper); a signed payload (see [`super::signing`]) of
//! realistic size is version 8. The image is a grayscale PNG with the standard 4-module
//! quiet zone, each module a whole number of pixels, about 300–400 px wide.

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::codecs::png::PngEncoder;
use image::{ImageEncoder, Luma};
use qrcode::{EcLevel, QrCode, Version};

/// Largest QR version a ticket may use.
pub const MAX_VERSION: i16 = 10;
/// Aimed-at image width in pixels (quiet zone included).
const TARGET_PX: u32 = 360;
/// Quiet zone on each side, in modules (the `qrcode` crate's default for normal codes).
const QUIET_ZONE: u32 = 4;

fn encode(payload: &str) -> anyhow::Result<QrCode> {
    let code = QrCode::with_error_correction_level(payload, EcLevel::M)
        .with_context(|| format!("payload of {} bytes does not fit a QR code", payload.len()))?;
    match code.version() {
        Version::Normal(v) if v <= MAX_VERSION => Ok(code),
        version => bail!(
            "payload of {} bytes needs QR {version:?} at level M (max version {MAX_VERSION})",
            payload.len()
        ),
    }
}

/// The QR version `payload` is rendered with.
pub fn version_of(payload: &str) -> anyhow::Result<i16> {
    match encode(payload)?.version() {
        Version::Normal(v) | Version::Micro(v) => Ok(v),
    }
}

/// The QR code of `payload` as PNG bytes.
pub fn png(payload: &str) -> anyhow::Result<Vec<u8>> {
    let code = encode(payload)?;
    let modules = u32::try_from(code.width())? + 2 * QUIET_ZONE;
    let module_px = (TARGET_PX / modules).max(1);
    let img = code
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(module_px, module_px)
        .build();
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::L8,
        )
        .context("encoding QR code PNG")?;
    Ok(out)
}

/// The PNG of [`png`] in standard base64 (the ticket's `qrCodeData`).
pub fn png_base64(payload: &str) -> anyhow::Result<String> {
    Ok(STANDARD.encode(png(payload)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::signing::TicketKeys;

    fn decode(png_bytes: &[u8]) -> Vec<String> {
        let img = image::load_from_memory_with_format(png_bytes, image::ImageFormat::Png)
            .unwrap()
            .to_luma8();
        assert!((300..=400).contains(&img.width()), "{} px", img.width());
        assert_eq!(img.width(), img.height());
        let mut prepared = rqrr::PreparedImage::prepare(img);
        prepared
            .detect_grids()
            .iter()
            .map(|grid| grid.decode().unwrap().1)
            .collect()
    }

    #[test]
    fn realistic_payload_round_trips_within_version_10() {
        let id = 1_000_000_000_000;
        let payload = TicketKeys::generate().sign(id, id, "TC-2027-ABCDEFGH23");
        let version = version_of(&payload).unwrap();
        assert!(version <= MAX_VERSION, "version {version}");
        assert_eq!(version, 8);
        let bytes = png(&payload).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(decode(&bytes), std::slice::from_ref(&payload));
        let b64 = png_base64(&payload).unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap(), bytes);
    }

    #[test]
    fn small_payload_is_still_a_readable_size() {
        assert_eq!(version_of("EP1").unwrap(), 1);
        assert_eq!(decode(&png("EP1").unwrap()), ["EP1"]);
    }

    #[test]
    fn oversized_payload_is_an_error() {
        let payload = "A".repeat(2000);
        assert!(png(&payload).is_err());
        assert!(version_of(&payload).is_err());
        // Just above the version-10 level-M byte capacity (213 bytes).
        assert!(png(&"a".repeat(214)).is_err());
        assert_eq!(version_of(&"a".repeat(213)).unwrap(), 10);
    }
}
