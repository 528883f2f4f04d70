//! pco, wrapped format: a one-byte pco header, the chunk metadata and a single page. The page
//! count is ours (the chunk header), so pco's own standalone framing is not needed.

use pco::data_types::Number;
use pco::errors::PcoError;
use pco::wrapped::{FileCompressor, FileDecompressor};
use pco::{ChunkConfig, PagingSpec};

use super::ChunkError;

pub(super) fn pco_compress<T: Number>(nums: &[T]) -> Result<Vec<u8>, PcoError> {
    let config = ChunkConfig::default().with_paging_spec(PagingSpec::Exact(vec![nums.len()]));
    let fc = FileCompressor::default();
    let mut out = Vec::new();
    fc.write_header(&mut out)?;
    let mut cc = fc.chunk_compressor(nums, &config)?;
    cc.write_meta(&mut out)?;
    cc.write_page(0, &mut out)?;
    Ok(out)
}

pub(super) fn pco_decompress<T: Number>(
    bytes: &[u8],
    n: usize,
    section: &'static str,
) -> Result<Vec<T>, ChunkError> {
    let err = |source| ChunkError::Pco { section, source };
    let (fd, rest) = FileDecompressor::new(bytes).map_err(err)?;
    let (mut cd, rest) = fd.chunk_decompressor::<T, _>(rest).map_err(err)?;
    let mut pd = cd.page_decompressor(rest, n).map_err(err)?;
    let mut out = vec![T::default(); n];
    let progress = pd.read(&mut out).map_err(err)?;
    if progress.n_processed != n || !progress.finished {
        return Err(ChunkError::Corrupt(
            "pco section holds fewer points than the chunk",
        ));
    }
    if !pd.into_src().is_empty() {
        return Err(ChunkError::Corrupt("bytes after the pco section"));
    }
    Ok(out)
}
