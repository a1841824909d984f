// Loader robustness: truncated, corrupt and hostile checkpoints give a clear vitrt::Error naming the
// problem, never a crash, hang or out-of-bounds read (run under ASan in the debug preset). Also replays
// the fuzz corpora (checkpoint formats and images) through every parser.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "io/tensor_file.h"
#include "model/weights.h"
#include "test_util.h"
#include "vitrt/vitrt.h"

namespace vitrt {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

Bytes as_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Built through std::string: GCC 12 misreports vector<uint8_t>::insert growth (-Warray-bounds).
Bytes safetensors(const std::string& header, const Bytes& data) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  out += header;
  out.append(data.begin(), data.end());
  return as_bytes(out);
}

// Serializes fp32 tensors in timm naming (what timm's save_file writes).
Bytes safetensors(const std::map<std::string, HostTensor>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  Bytes data;
  for (const auto& [name, t] : tensors) {
    const auto begin = data.size();
    const auto* p = reinterpret_cast<const std::uint8_t*>(t.data.data());
    data.insert(data.end(), p, p + t.data.size() * 4);
    h[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  return safetensors(h.dump(), data);
}

using test::error_of;

#define EXPECT_ERROR(expr, substring) EXPECT_THAT_ERROR(error_of([&] { (void)(expr); }), substring)
void EXPECT_THAT_ERROR(const std::string& msg, const std::string& sub) {
  EXPECT_NE(msg.find(sub), std::string::npos) << "error was: " << msg << "\nexpected to contain: " << sub;
}

TensorFile parse_st(const Bytes& b) { return parse_safetensors(b, "x.safetensors"); }

TEST(Safetensors, RejectsHostileHeaders) {
  const Bytes four_floats(16, 0);
  EXPECT_ERROR(parse_st({1, 2, 3}), "too short");
  Bytes lying = safetensors("{}", {});
  lying[0] = 0xff, lying[1] = 0xff;
  EXPECT_ERROR(parse_st(lying), "runs past the end");
  Bytes huge = safetensors("{}", {});
  huge[7] = 0x7f;
  EXPECT_ERROR(parse_st(huge), "exceeds the 100 MiB limit");
  EXPECT_ERROR(parse_st(safetensors("{not json", {})), "not valid JSON");
  EXPECT_ERROR(parse_st(safetensors("[1,2]", {})), "not a JSON object");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", four_floats)), "outside the 16-byte data block");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[12,4]}})", four_floats)), "outside");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", four_floats)), "needs 12 bytes");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}})", four_floats)), "too large");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", four_floats)), "non-negative integer");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[18446744073709551615,16]}})", four_floats)), "outside");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", four_floats)), "dtype I64");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", four_floats)), "'a' appears twice");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", four_floats)), "overlap");
  EXPECT_ERROR(parse_st(safetensors(R"({"a":{"dtype":"F32","shape":[4]}})", four_floats)), "needs dtype, shape and data_offsets");
  EXPECT_ERROR(parse_st(safetensors(R"({"__metadata__":{"k":1}})", {})), "must be a string");
}

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vitrt_loader_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    cfg_ = *find_builtin("vit_tiny_patch16_224");
    cfg_.depth = 2;
    cfg_.num_classes = 7;
    cfg_.name = "";
    tensors_ = synthetic_tensors(cfg_, 3);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const Bytes& b) {
    const auto p = (dir_ / name).string();
    test::write_file(p, std::string(b.begin(), b.end()));
    return p;
  }
  fs::path dir_;
  ViTConfig cfg_;
  std::map<std::string, HostTensor> tensors_;
};

TEST_F(CheckpointFiles, RoundTripsAndInfersTheArchitecture) {
  auto model = Model::load(write("ok.safetensors", safetensors(tensors_)));
  EXPECT_EQ(model->format(), "timm");
  EXPECT_EQ(model->config().depth, 2);
  EXPECT_EQ(model->config().num_heads, 3);
  EXPECT_EQ(model->config().num_classes, 7);
  EXPECT_EQ(model->weights().blocks[1].fc2.weight[5], tensors_.at("blocks.1.mlp.fc2.weight").data[5]);
}

TEST_F(CheckpointFiles, NamesMissingWrongAndUnexpectedTensors) {
  auto missing = tensors_;
  missing.erase("blocks.1.mlp.fc2.bias");
  EXPECT_ERROR(Model::load(write("m.safetensors", safetensors(missing))), "missing tensor 'blocks.1.mlp.fc2.bias'");
  auto wrong = tensors_;
  wrong["blocks.0.attn.proj.weight"].shape = {96, 384};
  EXPECT_ERROR(Model::load(write("w.safetensors", safetensors(wrong))), "blocks.0.attn.proj.weight: expected [192, 192], found [96, 384]");
  auto extra = tensors_;
  extra["blocks.0.attn.q_norm.weight"] = HostTensor{{192}, std::vector<float>(192, 1.0f)};
  EXPECT_ERROR(Model::load(write("e.safetensors", safetensors(extra))), "unexpected tensor 'blocks.0.attn.q_norm.weight'");
  EXPECT_ERROR(Model::load(write("a.safetensors", safetensors(tensors_)), "vit_base_patch16_224"), "but vit_base_patch16_224 is dim 768");
  EXPECT_ERROR(Model::load(write("a.safetensors", safetensors(tensors_)), "vit_nonexistent"), "unknown architecture 'vit_nonexistent'");
  EXPECT_ERROR(Model::load((dir_ / "absent.safetensors").string()), "absent.safetensors: cannot open");
  EXPECT_ERROR(Model::load(write("junk.bin", as_bytes("hello world, not a checkpoint"))), "unrecognized checkpoint format");
  EXPECT_ERROR(Model::load(write("empty.safetensors", safetensors("{}", {}))), "missing tensor 'patch_embed.proj.weight'");
}

TEST_F(CheckpointFiles, EveryTruncationFailsCleanly) {
  const Bytes full = safetensors(tensors_);
  for (size_t len : {size_t{0}, size_t{4}, size_t{8}, size_t{9}, size_t{100}, full.size() / 3, full.size() - 1}) {
    Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
    const auto msg = error_of([&] { Model::load(write("cut.safetensors", cut)); });
    EXPECT_NE(msg, "<no error>") << "truncated to " << len;
  }
}

TEST_F(CheckpointFiles, HuggingFaceConfigAndPreprocessorAreRead) {
  const fs::path src = fs::path(test::golden_dir()) / "hf_vit_classifier";
  for (const char* f : {"model.safetensors", "config.json"}) fs::copy_file(src / f, dir_ / f);
  auto plain = Model::load((dir_ / "model.safetensors").string());
  EXPECT_EQ(plain->format(), "hf");
  EXPECT_FLOAT_EQ(plain->config().ln_eps, 1e-12f);
  EXPECT_TRUE(plain->config().preprocess.squash);
  EXPECT_EQ(plain->config().preprocess.interpolation, Interpolation::bilinear);
  EXPECT_EQ(plain->labels().at(3), "hf_class_3");
  test::write_file((dir_ / "preprocessor_config.json").string(), R"({"do_resize": true, "size": {"height": 40, "width": 40},
    "resample": 3, "image_mean": [0.1, 0.2, 0.3], "image_std": [0.4, 0.5, 0.6], "do_center_crop": true,
    "crop_size": {"height": 32, "width": 32}})");
  const auto with_pre = Model::load((dir_ / "model.safetensors").string());
  const auto& p = with_pre->config().preprocess;
  EXPECT_EQ(p.input_size, 32);
  EXPECT_DOUBLE_EQ(p.crop_pct, 0.8);
  EXPECT_TRUE(p.squash);
  EXPECT_EQ(p.interpolation, Interpolation::bicubic);
  EXPECT_FLOAT_EQ(p.mean[2], 0.3f);
  EXPECT_FLOAT_EQ(p.std[0], 0.4f);
  test::write_file((dir_ / "preprocessor_config.json").string(), R"({"resample": 0})");
  EXPECT_ERROR(Model::load((dir_ / "model.safetensors").string()), "preprocessor_config.json: resample 0 is not supported");
  test::write_file((dir_ / "config.json").string(), R"({"hidden_size": 48, "hidden_act": "gelu_new"})");
  EXPECT_ERROR(Model::load((dir_ / "model.safetensors").string()), "activation 'gelu_new' is not supported");
}

Bytes golden_npz(const char* name) {
  const auto s = test::read_file(test::golden_dir() + "/" + name + "/ViT-T_8.npz");
  return Bytes(s.begin(), s.end());
}

std::uint32_t le32(const Bytes& b, size_t off) {
  return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (static_cast<std::uint32_t>(b[off + 3]) << 24);
}

size_t central_dir(const Bytes& b) { return le32(b, b.size() - 22 + 16); }

TEST(Npz, ParsesStoredAndDeflated) {
  for (const char* n : {"npz_stored", "npz_deflated"}) {
    const auto f = parse_npz(golden_npz(n), n);
    EXPECT_NE(f.find("embedding/kernel"), nullptr);
    EXPECT_EQ(f.find("cls")->shape, (Shape{1, 1, 48}));
  }
}

TEST(Npz, RejectsCorruptArchives) {
  for (const char* n : {"npz_stored", "npz_deflated"}) {
    SCOPED_TRACE(n);
    const Bytes good = golden_npz(n);
    EXPECT_ERROR(parse_npz(Bytes(good.begin(), good.end() - 30), "f.npz"), "no zip end-of-central-directory record");
    EXPECT_ERROR(parse_npz(Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)), "f.npz"), "f.npz");
    Bytes flipped = good;
    flipped[200] ^= 0x5a;  // inside the first member's data
    EXPECT_NE(error_of([&] { parse_npz(flipped, "f.npz"); }), "<no error>");
    Bytes method = good;
    method[central_dir(method) + 10] = 99;
    EXPECT_ERROR(parse_npz(method, "f.npz"), "uses compression method 99");
    Bytes count = good;
    count[count.size() - 22 + 10] = 0xfe;
    count[count.size() - 22 + 11] = 0xfe;
    EXPECT_ERROR(parse_npz(count, "f.npz"), "entries in a");
    Bytes offset = good;
    offset[offset.size() - 22 + 19] = 0x7f;
    EXPECT_ERROR(parse_npz(offset, "f.npz"), "runs past the end");
    Bytes local = good;
    local[central_dir(local) + 42] = 0xf0;  // local header offset points elsewhere
    EXPECT_NE(error_of([&] { parse_npz(local, "f.npz"); }), "<no error>");
  }
  Bytes bomb = golden_npz("npz_deflated");
  const size_t cd = central_dir(bomb);
  bomb[cd + 24] = 0xff, bomb[cd + 25] = 0xff, bomb[cd + 26] = 0xff, bomb[cd + 27] = 0x7f;
  EXPECT_ERROR(parse_npz(bomb, "bomb.npz"), "is impossible for");
}

TEST(Npy, RejectsBadArrays) {
  auto npy = [](const std::string& dict, size_t data_bytes) {
    std::string b = "\x93NUMPY\x01";
    b += '\0';
    b += static_cast<char>(dict.size());
    b += '\0';
    b += dict;
    b.append(data_bytes, '\0');
    return as_bytes(b);
  };
  EXPECT_EQ(parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24), "a", "f").shape, (Shape{2, 3}));
  EXPECT_EQ(parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 20), "a", "f").shape, (Shape{5}));
  EXPECT_EQ(parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4), "a", "f").shape, (Shape{}));
  EXPECT_ERROR(parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20), "a", "f"), "needs 24 data bytes, found 20");
  EXPECT_ERROR(parse_npy(npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 16), "a", "f"), "dtype '<i8' is not supported");
  EXPECT_ERROR(parse_npy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8), "a", "f"), "Fortran-order");
  EXPECT_ERROR(parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999, 99999999999999), }", 8), "a", "f"), "too large");
  EXPECT_ERROR(parse_npy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (x), }", 8), "a", "f"), "bad shape");
  EXPECT_ERROR(parse_npy(npy("{'descr': '<f4'}", 8), "a", "f"), "lacks");
  Bytes lying = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
  lying[8] = 0xff;
  EXPECT_ERROR(parse_npy(lying, "a", "f"), "runs past the end");
  EXPECT_ERROR(parse_npy(as_bytes("\x93NUMPX\x01\x00\x00\x00"), "a", "f"), "bad magic");
}

// Replays every file of the fuzz corpora through all three parsers: errors are fine, crashes are not.
TEST(FuzzCorpus, ReplaysWithoutCrashing) {
  int files = 0;
  if (!fs::exists(VITRT_FUZZ_CORPUS_DIR)) {
    GTEST_SKIP() << "no corpus at " << VITRT_FUZZ_CORPUS_DIR;
  }
  for (const auto& e : fs::recursive_directory_iterator(VITRT_FUZZ_CORPUS_DIR)) {
    if (!e.is_regular_file()) continue;
    const auto s = test::read_file(e.path().string());
    const Bytes b(s.begin(), s.end());
    (void)error_of([&] { parse_safetensors(b, "corpus"); });
    (void)error_of([&] { parse_npz(b, "corpus"); });
    (void)error_of([&] { parse_npy(b, "corpus", "corpus"); });
    (void)error_of([&] { decode_image(b, "corpus"); });
    ++files;
  }
  EXPECT_GT(files, 10);
}

}  // namespace
}  // namespace vitrt
