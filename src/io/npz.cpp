// .npz is a zip archive of .npy members (numpy.savez writes stored members, savez_compressed deflated
// ones, and zip64 records for large archives). Only the central directory is trusted for the member
// list; every offset and size is checked against the buffer, and each member's CRC-32 is verified.
#include <zlib.h>

#include <cstring>
#include <limits>
#include <set>

#include "core/check.h"
#include "io/npy.h"
#include "io/tensor_file.h"

namespace vitrt {
namespace {

class Reader {
 public:
  Reader(std::span<const std::uint8_t> b, const std::string& file) : b_(b), file_(file) {}
  std::uint64_t u(std::uint64_t off, int n, const char* what) const {
    VITRT_CHECK(off <= b_.size() && static_cast<std::uint64_t>(n) <= b_.size() - off, file_, ": zip ", what,
                " at offset ", off, " runs past the end of the file");
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b_[static_cast<size_t>(off) + static_cast<size_t>(i)];
    return v;
  }
  std::span<const std::uint8_t> span(std::uint64_t off, std::uint64_t n, const char* what) const {
    VITRT_CHECK(off <= b_.size() && n <= b_.size() - off, file_, ": zip ", what, " [", off, ", +", n,
                ") runs past the end of the file (", b_.size(), " bytes)");
    return b_.subspan(static_cast<size_t>(off), static_cast<size_t>(n));
  }

 private:
  std::span<const std::uint8_t> b_;
  const std::string& file_;
};

struct Member {
  std::string name;
  std::uint16_t method = 0;
  std::uint16_t flags = 0;
  std::uint32_t crc = 0;
  std::uint64_t comp_size = 0, size = 0, local_offset = 0;
};

std::vector<std::uint8_t> inflate_member(std::span<const std::uint8_t> comp, std::uint64_t size,
                                         const std::string& where) {
  // Deflate cannot expand data by more than 1032:1; a larger claimed size is a lie.
  VITRT_CHECK(size <= comp.size() * 1032ull + 1024, where, ": claimed size ", size,
              " is impossible for ", comp.size(), " compressed bytes");
  std::vector<std::uint8_t> out(static_cast<size_t>(size));
  z_stream zs{};
  VITRT_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK, where, ": zlib init failed");
  size_t in_done = 0, out_done = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    const size_t in_chunk = std::min<size_t>(comp.size() - in_done, 1u << 30);
    const size_t out_chunk = std::min<size_t>(out.size() - out_done, 1u << 30);
    zs.next_in = const_cast<Bytef*>(comp.data() + in_done);
    zs.avail_in = static_cast<uInt>(in_chunk);
    zs.next_out = out.data() + out_done;
    zs.avail_out = static_cast<uInt>(out_chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    const size_t used_in = in_chunk - zs.avail_in, used_out = out_chunk - zs.avail_out;
    in_done += used_in;
    out_done += used_out;
    if (rc == Z_OK && used_in == 0 && used_out == 0) rc = Z_BUF_ERROR;  // no progress: truncated or full
  }
  inflateEnd(&zs);
  VITRT_CHECK(rc == Z_STREAM_END, where, ": corrupt deflate data (zlib error ", rc, ")");
  VITRT_CHECK(out_done == out.size(), where, ": inflated to ", out_done, " bytes, header says ", size);
  return out;
}

}  // namespace

TensorFile parse_npz(std::span<const std::uint8_t> bytes, const std::string& file) {
  Reader r(bytes, file);
  VITRT_CHECK(bytes.size() >= 22, file, ": too short for a zip/npz file");
  // End of central directory: scan back over a comment of at most 65535 bytes.
  std::uint64_t eocd = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t lowest = bytes.size() >= 22 + 65535 ? bytes.size() - 22 - 65535 : 0;
  for (std::uint64_t p = bytes.size() - 22;; --p) {
    if (r.u(p, 4, "end record") == 0x06054b50) {
      eocd = p;
      break;
    }
    if (p == lowest) break;
  }
  VITRT_CHECK(eocd != std::numeric_limits<std::uint64_t>::max(), file,
              ": no zip end-of-central-directory record (truncated or not an npz)");
  std::uint64_t count = r.u(eocd + 10, 2, "entry count");
  std::uint64_t cd_size = r.u(eocd + 12, 4, "directory size");
  std::uint64_t cd_off = r.u(eocd + 16, 4, "directory offset");
  if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
    VITRT_CHECK(eocd >= 20 && r.u(eocd - 20, 4, "zip64 locator") == 0x07064b50, file,
                ": zip64 archive without a zip64 locator");
    const auto z64 = r.u(eocd - 20 + 8, 8, "zip64 end record offset");
    VITRT_CHECK(r.u(z64, 4, "zip64 end record") == 0x06064b50, file, ": bad zip64 end record signature");
    count = r.u(z64 + 32, 8, "zip64 entry count");
    cd_size = r.u(z64 + 40, 8, "zip64 directory size");
    cd_off = r.u(z64 + 48, 8, "zip64 directory offset");
  }
  auto cd = r.span(cd_off, cd_size, "central directory");
  Reader c(cd, file);
  VITRT_CHECK(count <= cd.size() / 46, file, ": zip claims ", count, " entries in a ", cd.size(),
              "-byte directory");

  TensorFile out;
  out.path = file;
  out.format = "npz";
  std::set<std::string> names;
  std::uint64_t p = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    VITRT_CHECK(c.u(p, 4, "directory entry") == 0x02014b50, file, ": bad central directory entry ", i);
    Member m;
    m.flags = static_cast<std::uint16_t>(c.u(p + 8, 2, "flags"));
    m.method = static_cast<std::uint16_t>(c.u(p + 10, 2, "method"));
    m.crc = static_cast<std::uint32_t>(c.u(p + 16, 4, "crc"));
    m.comp_size = c.u(p + 20, 4, "compressed size");
    m.size = c.u(p + 24, 4, "size");
    const auto name_len = c.u(p + 28, 2, "name length");
    const auto extra_len = c.u(p + 30, 2, "extra length");
    const auto comment_len = c.u(p + 32, 2, "comment length");
    m.local_offset = c.u(p + 42, 4, "local header offset");
    auto name = c.span(p + 46, name_len, "entry name");
    m.name.assign(name.begin(), name.end());
    // zip64 extra field: 64-bit values for the fields that hold 0xffffffff, in this order.
    auto extra = c.span(p + 46 + name_len, extra_len, "extra field");
    Reader e(extra, file);
    for (std::uint64_t q = 0; q + 4 <= extra.size();) {
      const auto id = e.u(q, 2, "extra id"), len = e.u(q + 2, 2, "extra length");
      if (id == 0x0001) {
        std::uint64_t f = q + 4;
        if (m.size == 0xffffffff) m.size = e.u(f, 8, "zip64 size"), f += 8;
        if (m.comp_size == 0xffffffff) m.comp_size = e.u(f, 8, "zip64 compressed size"), f += 8;
        if (m.local_offset == 0xffffffff) m.local_offset = e.u(f, 8, "zip64 offset");
      }
      q += 4 + len;
    }
    p += 46 + name_len + extra_len + comment_len;

    const std::string where = file + ": member '" + m.name + "'";
    VITRT_CHECK((m.flags & 1) == 0, where, " is encrypted");
    VITRT_CHECK(m.method == 0 || m.method == 8, where, " uses compression method ", m.method,
                "; expected stored (0) or deflate (8)");
    VITRT_CHECK(r.u(m.local_offset, 4, "local header") == 0x04034b50, where, ": bad local header signature");
    const auto data_off = m.local_offset + 30 + r.u(m.local_offset + 26, 2, "local name length") +
                          r.u(m.local_offset + 28, 2, "local extra length");
    auto comp = r.span(data_off, m.comp_size, "member data");
    std::span<const std::uint8_t> data;
    if (m.method == 0) {
      VITRT_CHECK(m.comp_size == m.size, where, ": stored member sizes disagree (", m.comp_size, " vs ", m.size, ")");
      data = comp;
    } else {
      out.owned.push_back(inflate_member(comp, m.size, where));
      data = out.owned.back();
    }
    const auto crc = crc32_z(0, data.data(), data.size());
    VITRT_CHECK(crc == m.crc, where, ": CRC-32 mismatch (corrupt archive)");

    std::string tname = m.name;
    if (tname.size() > 4 && tname.compare(tname.size() - 4, 4, ".npy") == 0) tname.resize(tname.size() - 4);
    VITRT_CHECK(names.insert(tname).second, file, ": array '", tname, "' appears twice in the archive");
    out.tensors.push_back(parse_npy(data, tname, file));
  }
  return out;
}

const RawTensor* TensorFile::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::int64_t RawTensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

TensorFile open_tensor_file(const std::string& path) {
  auto mapping = std::make_shared<MappedFile>(path);
  auto b = mapping->bytes();
  TensorFile f;
  if (b.size() >= 4 && std::memcmp(b.data(), "PK\x03\x04", 4) == 0) {
    f = parse_npz(b, path);
  } else if (b.size() >= 6 && std::memcmp(b.data(), "\x93NUMPY", 6) == 0) {
    VITRT_FAIL(path, ": a single .npy array is not a checkpoint; expected safetensors or .npz");
  } else if (b.size() >= 9 && b[8] == '{') {
    f = parse_safetensors(b, path);
  } else {
    VITRT_FAIL(path, ": unrecognized checkpoint format; expected safetensors (timm or Hugging Face) or "
                     "Google's .npz");
  }
  f.mapping = std::move(mapping);
  return f;
}

}  // namespace vitrt
