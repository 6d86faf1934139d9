// Centinela SigMF playback device for SoapySDR.
//
// Plays a SigMF recording as a receive stream, so that any SoapySDR application (and
// Centinela's own SoapySource tests) can be fed a capture through the real libSoapySDR:
//
//   SOAPY_SDR_PLUGIN_PATH=<dir of libcentinelaSigmf.so> SoapySDRUtil --probe="driver=sigmf,file=x.sigmf-meta"
//
// Arguments: file=<.sigmf-meta> (required), repeat=1 (loop at the end), realtime=1 (pace reads
// at the sample rate), overflow_every=N and overflow_drop=M (every N samples, drop M and report
// an overflow: for testing overflow handling). Datatypes: cu8, ci8, ci16_le, cf32_le. Timestamps
// are the sample index at the recording's rate. Multi-capture recordings play as one stream.

#include <SoapySDR/Device.hpp>
#include <SoapySDR/Errors.h>
#include <SoapySDR/Formats.hpp>
#include <SoapySDR/Logger.hpp>
#include <SoapySDR/Registry.hpp>

#include <chrono>
#include <complex>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string readAll(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Value text after "key": in a flat JSON document (first occurrence).
bool jsonValue(const std::string &doc, const std::string &key, std::string &out) {
    const std::string quoted = "\"" + key + "\"";
    size_t p = doc.find(quoted);
    if (p == std::string::npos) return false;
    p = doc.find(':', p + quoted.size());
    if (p == std::string::npos) return false;
    p = doc.find_first_not_of(" \t\r\n", p + 1);
    if (p == std::string::npos) return false;
    if (doc[p] == '"') {
        size_t e = doc.find('"', p + 1);
        if (e == std::string::npos) return false;
        out = doc.substr(p + 1, e - p - 1);
    } else {
        size_t e = doc.find_first_of(",}\r\n", p);
        out = doc.substr(p, e - p);
        while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
    }
    return true;
}

std::string argOr(const SoapySDR::Kwargs &a, const std::string &k, const std::string &d) {
    auto it = a.find(k);
    return it == a.end() ? d : it->second;
}

class SigmfDevice : public SoapySDR::Device {
  public:
    explicit SigmfDevice(const SoapySDR::Kwargs &args) {
        metaPath_ = argOr(args, "file", "");
        if (metaPath_.empty()) throw std::runtime_error("sigmf: the `file` argument is required");
        std::string base = metaPath_;
        const std::string suffix = ".sigmf-meta";
        if (base.size() > suffix.size() && base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0)
            base.resize(base.size() - suffix.size());
        dataPath_ = base + ".sigmf-data";
        const std::string meta = readAll(base + suffix);
        std::string v;
        if (!jsonValue(meta, "core:datatype", datatype_)) throw std::runtime_error("sigmf: no core:datatype");
        if (datatype_ == "cu8" || datatype_ == "ci8") sampleBytes_ = 2;
        else if (datatype_ == "ci16_le") sampleBytes_ = 4;
        else if (datatype_ == "cf32_le") sampleBytes_ = 8;
        else throw std::runtime_error("sigmf: unsupported datatype " + datatype_);
        if (!jsonValue(meta, "core:sample_rate", v)) throw std::runtime_error("sigmf: no core:sample_rate");
        rate_ = std::stod(v);
        if (!(rate_ > 0)) throw std::runtime_error("sigmf: core:sample_rate must be positive");
        if (jsonValue(meta, "core:frequency", v)) frequency_ = std::stod(v);
        if (jsonValue(meta, "core:header_bytes", v)) headerBytes_ = std::stoull(v);
        repeat_ = argOr(args, "repeat", "0") == "1";
        realtime_ = argOr(args, "realtime", "0") == "1";
        overflowEvery_ = std::stoull(argOr(args, "overflow_every", "0"));
        overflowDrop_ = std::stoull(argOr(args, "overflow_drop", "1000"));
        file_.open(dataPath_, std::ios::binary);
        if (!file_) throw std::runtime_error("sigmf: cannot open " + dataPath_);
        rewind();
    }

    std::string getDriverKey() const override { return "sigmf"; }
    std::string getHardwareKey() const override { return "sigmf-playback"; }
    SoapySDR::Kwargs getHardwareInfo() const override {
        SoapySDR::Kwargs k;
        k["file"] = metaPath_;
        k["datatype"] = datatype_;
        return k;
    }
    size_t getNumChannels(const int dir) const override { return dir == SOAPY_SDR_RX ? 1 : 0; }

    std::vector<std::string> getStreamFormats(const int, const size_t) const override { return {SOAPY_SDR_CF32}; }
    std::string getNativeStreamFormat(const int, const size_t, double &fullScale) const override {
        fullScale = 1.0;
        return SOAPY_SDR_CF32;
    }
    SoapySDR::Stream *setupStream(const int dir, const std::string &format, const std::vector<size_t> &channels,
                                  const SoapySDR::Kwargs &) override {
        if (dir != SOAPY_SDR_RX) throw std::runtime_error("sigmf: receive only");
        if (format != SOAPY_SDR_CF32) throw std::runtime_error("sigmf: stream format must be CF32, got " + format);
        if (channels.size() > 1 || (channels.size() == 1 && channels[0] != 0))
            throw std::runtime_error("sigmf: one channel (0)");
        return reinterpret_cast<SoapySDR::Stream *>(this);
    }
    void closeStream(SoapySDR::Stream *) override {}
    size_t getStreamMTU(SoapySDR::Stream *) const override { return 16384; }
    int activateStream(SoapySDR::Stream *, const int, const long long, const size_t) override {
        active_ = true;
        started_ = std::chrono::steady_clock::now();
        startIndex_ = index_;
        return 0;
    }
    int deactivateStream(SoapySDR::Stream *, const int, const long long) override {
        active_ = false;
        return 0;
    }

    int readStream(SoapySDR::Stream *, void *const *buffs, const size_t numElems, int &flags, long long &timeNs,
                   const long timeoutUs) override {
        flags = 0;
        if (!active_) return SOAPY_SDR_STREAM_ERROR;
        if (overflowEvery_ > 0 && sinceOverflow_ >= overflowEvery_) {
            sinceOverflow_ = 0;
            skip(overflowDrop_);
            return SOAPY_SDR_OVERFLOW;
        }
        size_t want = numElems;
        if (overflowEvery_ > 0) want = std::min<size_t>(want, overflowEvery_ - sinceOverflow_);
        if (realtime_) {
            const double due = double(index_ - startIndex_) / rate_;
            const auto now = std::chrono::steady_clock::now();
            const double elapsed = std::chrono::duration<double>(now - started_).count();
            if (due > elapsed) {
                const double wait = due - elapsed;
                if (wait * 1e6 > double(timeoutUs)) {
                    std::this_thread::sleep_for(std::chrono::microseconds(timeoutUs));
                    return SOAPY_SDR_TIMEOUT;
                }
                std::this_thread::sleep_for(std::chrono::duration<double>(wait));
            }
        }
        raw_.resize(want * sampleBytes_);
        file_.read(reinterpret_cast<char *>(raw_.data()), std::streamsize(raw_.size()));
        size_t got = size_t(file_.gcount()) / sampleBytes_;
        if (got == 0) {
            if (repeat_) {
                rewind();
                file_.read(reinterpret_cast<char *>(raw_.data()), std::streamsize(raw_.size()));
                got = size_t(file_.gcount()) / sampleBytes_;
            }
            if (got == 0) return SOAPY_SDR_TIMEOUT;
        }
        auto *out = static_cast<std::complex<float> *>(buffs[0]);
        for (size_t i = 0; i < got; i++) out[i] = decode(&raw_[i * sampleBytes_]);
        timeNs = (long long)(double(index_) * 1e9 / rate_);
        flags |= SOAPY_SDR_HAS_TIME;
        index_ += got;
        sinceOverflow_ += got;
        return int(got);
    }

    void setFrequency(const int, const size_t, const double f, const SoapySDR::Kwargs &) override {
        if (frequency_ > 0 && std::abs(f - frequency_) > rate_ / 2)
            SoapySDR::logf(SOAPY_SDR_WARNING, "sigmf: tuned to %.0f Hz but the recording is at %.0f Hz", f, frequency_);
    }
    double getFrequency(const int, const size_t) const override { return frequency_; }
    SoapySDR::RangeList getFrequencyRange(const int, const size_t) const override {
        return {SoapySDR::Range(0.0, 100e9)};
    }
    void setSampleRate(const int, const size_t, const double rate) override {
        if (std::abs(rate - rate_) > 1e-6 * rate_) {
            std::ostringstream ss;
            ss.setf(std::ios::fixed);
            ss.precision(0);
            ss << "sigmf: the recording is at " << rate_ << " S/s, cannot play at " << rate;
            throw std::runtime_error(ss.str());
        }
    }
    double getSampleRate(const int, const size_t) const override { return rate_; }
    std::vector<double> listSampleRates(const int, const size_t) const override { return {rate_}; }
    std::vector<std::string> listGains(const int, const size_t) const override { return {"PLAYBACK"}; }
    void setGain(const int, const size_t, const double g) override { gain_ = g; }
    void setGain(const int, const size_t, const std::string &, const double g) override { gain_ = g; }
    double getGain(const int, const size_t) const override { return gain_; }
    SoapySDR::Range getGainRange(const int, const size_t) const override { return SoapySDR::Range(0, 100); }
    std::vector<std::string> listAntennas(const int, const size_t) const override { return {"FILE"}; }
    std::string getAntenna(const int, const size_t) const override { return "FILE"; }
    bool hasHardwareTime(const std::string &) const override { return true; }
    long long getHardwareTime(const std::string &) const override { return (long long)(double(index_) * 1e9 / rate_); }

  private:
    void rewind() {
        file_.clear();
        file_.seekg(std::streamoff(headerBytes_));
    }
    void skip(unsigned long long n) {
        file_.seekg(std::streamoff(n * sampleBytes_), std::ios::cur);
        if (!file_) {
            file_.clear();
            file_.seekg(0, std::ios::end);
        }
        index_ += n;
    }
    std::complex<float> decode(const uint8_t *b) const {
        if (datatype_ == "cu8") return {(float(b[0]) - 127.5f) / 127.5f, (float(b[1]) - 127.5f) / 127.5f};
        if (datatype_ == "ci8") return {float(int8_t(b[0])) / 128.0f, float(int8_t(b[1])) / 128.0f};
        if (datatype_ == "ci16_le") {
            int16_t re, im;
            std::memcpy(&re, b, 2);
            std::memcpy(&im, b + 2, 2);
            return {float(re) / 32768.0f, float(im) / 32768.0f};
        }
        float re, im;
        std::memcpy(&re, b, 4);
        std::memcpy(&im, b + 4, 4);
        return {re, im};
    }

    std::string metaPath_, dataPath_, datatype_;
    size_t sampleBytes_ = 8;
    double rate_ = 0, frequency_ = 0, gain_ = 0;
    unsigned long long headerBytes_ = 0, overflowEvery_ = 0, overflowDrop_ = 1000, sinceOverflow_ = 0;
    unsigned long long index_ = 0, startIndex_ = 0;
    bool repeat_ = false, realtime_ = false, active_ = false;
    std::ifstream file_;
    std::vector<uint8_t> raw_;
    std::chrono::steady_clock::time_point started_;
};

SoapySDR::KwargsList findSigmf(const SoapySDR::Kwargs &args) {
    SoapySDR::KwargsList out;
    if (argOr(args, "driver", "") != "sigmf" || args.count("file") == 0) return out;
    SoapySDR::Kwargs k = args;
    k["label"] = "SigMF playback: " + args.at("file");
    out.push_back(k);
    return out;
}

SoapySDR::Device *makeSigmf(const SoapySDR::Kwargs &args) { return new SigmfDevice(args); }

SoapySDR::Registry registerSigmf("sigmf", &findSigmf, &makeSigmf, SOAPY_SDR_ABI_VERSION);

}  // namespace
