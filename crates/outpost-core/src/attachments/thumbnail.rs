//! An attached image's thumbnail: small enough to ride in its record (so a device on 2G shows
//! every photo small before any arrives whole), turned upright as the camera meant it (phones
//! store photos sideways with an EXIF orientation), as a JPEG `data:` URL.

use base64::Engine as _;
use image::{DynamicImage, ImageDecoder, ImageReader};
use outpost_protocol::fields::MAX_THUMBNAIL_BYTES;
use std::path::Path;

/// The longest side of a thumbnail, in pixels, and the smaller tries when one is too large.
const SIDES: [u32; 3] = [320, 200, 120];
const QUALITY: u8 = 70;
/// Images larger than this are not decoded for a thumbnail (the pixels would take gigabytes).
const MAX_DECODE_PIXELS: u64 = 100_000_000;

/// What decoding an image tells: its upright size, and its thumbnail when one fits.
pub(crate) struct ImageFacts {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) thumbnail: Option<String>,
}

/// Reads the image at `path` (any format the `image` crate knows from its bytes). `None` when
/// it cannot be read as an image: it is attached as a plain file.
pub(crate) fn facts(path: &Path) -> Option<ImageFacts> {
    let decoder = ImageReader::open(path)
        .ok()?
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_DECODE_PIXELS {
        return None;
    }
    let mut decoder = decoder;
    let orientation = decoder.orientation().ok();
    let mut img = match DynamicImage::from_decoder(decoder) {
        Ok(img) => img,
        Err(e) => {
            tracing::debug!(error = %e, "an attached image could not be decoded");
            return None;
        }
    };
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let (width, height) = (img.width(), img.height());
    let thumbnail = SIDES.iter().find_map(|&side| encode(&img, side));
    Some(ImageFacts {
        width,
        height,
        thumbnail,
    })
}

fn encode(img: &DynamicImage, side: u32) -> Option<String> {
    // Never larger than the image itself: a small picture stays as sharp as it is.
    let small = if img.width() <= side && img.height() <= side {
        img.to_rgb8()
    } else {
        img.thumbnail(side, side).into_rgb8()
    };
    let mut jpeg = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, QUALITY);
    small.write_with_encoder(encoder).ok()?;
    let url = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&jpeg)
    );
    (url.len() <= MAX_THUMBNAIL_BYTES).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_taken_sideways_gets_an_upright_thumbnail_that_fits_its_record() {
        let dir = tempfile::tempdir().expect("dir");
        // A noisy 1200x800 photo: the worst case for a JPEG's size.
        let mut rng = 7u32;
        let img = image::RgbImage::from_fn(1200, 800, |_, _| {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let b = rng.to_be_bytes();
            image::Rgb([b[0], b[1], b[2]])
        });
        let path = dir.path().join("pump.png");
        img.save(&path).expect("save");
        let f = facts(&path).expect("an image");
        assert_eq!((f.width, f.height), (1200, 800));
        let thumb = f.thumbnail.expect("a thumbnail");
        assert!(thumb.starts_with("data:image/jpeg;base64,"));
        assert!(thumb.len() <= MAX_THUMBNAIL_BYTES, "{}", thumb.len());
        outpost_protocol::fields::check(
            outpost_protocol::Entity::Attachment,
            "thumbnail",
            &serde_json::Value::from(thumb),
        )
        .expect("the protocol takes it");

        let not_an_image = dir.path().join("x.jpg");
        std::fs::write(&not_an_image, b"not really a jpeg").expect("write");
        assert!(facts(&not_an_image).is_none());
    }
}
