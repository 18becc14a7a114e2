/*
 * libspcm_emu.c: a stand-in for Spectrum's driver library (libspcm_linux.so) that forwards
 * every call to callbacks registered from Python (awgrt.sim.spcm_emulation).
 *
 * It exports the 19 functions that spcm_core binds, with the real driver's C signatures, plus
 * one registration function, awgrt_spcm_register(). Built with -Wl,-soname,libspcm_linux.so so
 * that a later dlopen("libspcm_linux.so") finds this already-loaded library.
 *
 * Conventions (the Python side relies on them):
 *  - A card handle is a small positive integer cast to a pointer; NULL (0) is the driver-wide
 *    handle spcm uses for version queries and log lines.
 *  - Integer registers travel as int64 both ways, so a step entry with bit 63 (SPCSEQ_END) set
 *    arrives and reads back as a negative int64. The _i32 functions are the i64 callbacks with
 *    a C cast (sign extension on write, truncation on read).
 *  - Every function returns Spectrum's error code (0 = ERR_OK). Before callbacks are registered,
 *    spcm_hOpen returns NULL and every other call returns ERR_INIT.
 *  - GetErrorInfo fills the caller's register, value and text (ERRORTEXTLEN = 200 bytes,
 *    always NUL-terminated); any of the three pointers may be NULL.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AWGRT_ERR_OK 0x0000u
#define AWGRT_ERR_INIT 0x0001u
#define AWGRT_ERRORTEXTLEN 200

typedef void *drv_handle;

typedef int64_t (*cb_open_t)(const char *device);
typedef void (*cb_close_t)(int64_t handle);
typedef uint32_t (*cb_error_t)(int64_t handle, uint32_t *reg, int64_t *value, char *text, uint64_t text_len);
typedef uint32_t (*cb_get_i64_t)(int64_t handle, int32_t reg, int64_t *value);
typedef uint32_t (*cb_get_d64_t)(int64_t handle, int32_t reg, double *value);
typedef uint32_t (*cb_get_ptr_t)(int64_t handle, int32_t reg, void *buffer, uint64_t len);
typedef uint32_t (*cb_set_i64_t)(int64_t handle, int32_t reg, int64_t value);
typedef uint32_t (*cb_set_d64_t)(int64_t handle, int32_t reg, double value);
typedef uint32_t (*cb_set_ptr_t)(int64_t handle, int32_t reg, void *buffer, uint64_t len);
typedef uint32_t (*cb_def_transfer_t)(int64_t handle, uint32_t buf_type, uint32_t direction, uint32_t notify, void *buffer, uint64_t board_offset,
                                      uint64_t len);
typedef uint32_t (*cb_invalidate_t)(int64_t handle, uint32_t buf_type);

/* Field order is part of the interface: awgrt.sim.spcm_emulation._Callbacks mirrors it. */
typedef struct {
    cb_open_t open;
    cb_close_t close;
    cb_error_t error;
    cb_get_i64_t get_i64;
    cb_get_d64_t get_d64;
    cb_get_ptr_t get_ptr;
    cb_set_i64_t set_i64;
    cb_set_d64_t set_d64;
    cb_set_ptr_t set_ptr;
    cb_def_transfer_t def_transfer;
    cb_invalidate_t invalidate;
} awgrt_spcm_callbacks;

static awgrt_spcm_callbacks cb;
static int registered = 0;

/* Register the callbacks (copied), or clear them with NULL. `size` must be
 * sizeof(awgrt_spcm_callbacks): a mismatch returns -1 and changes nothing. */
int awgrt_spcm_register(const awgrt_spcm_callbacks *callbacks, uint64_t size) {
    if (callbacks == NULL) {
        memset(&cb, 0, sizeof cb);
        registered = 0;
        return 0;
    }
    if (size != sizeof(awgrt_spcm_callbacks))
        return -1;
    cb = *callbacks;
    registered = 1;
    return 0;
}

/* Interface version of this library: bump when awgrt_spcm_callbacks changes. */
int awgrt_spcm_abi_version(void) { return 1; }

static int64_t h2i(drv_handle h) { return (int64_t)(intptr_t)h; }

drv_handle spcm_hOpen(const char *szDeviceName) {
    if (!registered || cb.open == NULL || szDeviceName == NULL)
        return NULL;
    return (drv_handle)(intptr_t)cb.open(szDeviceName);
}

void spcm_vClose(drv_handle hDevice) {
    if (registered && cb.close != NULL)
        cb.close(h2i(hDevice));
}

static uint32_t error_info(drv_handle hDevice, uint32_t *reg, int64_t *value, char *text) {
    uint32_t r = 0;
    int64_t v = 0;
    char buf[AWGRT_ERRORTEXTLEN];
    uint32_t code;
    memset(buf, 0, sizeof buf);
    if (!registered || cb.error == NULL) {
        code = AWGRT_ERR_INIT;
        strncpy(buf, "awgrt emulated driver: no emulation is active", sizeof buf - 1);
    } else {
        code = cb.error(h2i(hDevice), &r, &v, buf, sizeof buf);
    }
    buf[sizeof buf - 1] = '\0';
    if (reg != NULL)
        *reg = r;
    if (value != NULL)
        *value = v;
    if (text != NULL)
        memcpy(text, buf, sizeof buf);
    return code;
}

uint32_t spcm_dwGetErrorInfo_i32(drv_handle hDevice, uint32_t *pdwErrorReg, int32_t *plErrorValue, char pszErrorTextBuffer[AWGRT_ERRORTEXTLEN]) {
    int64_t v = 0;
    uint32_t code = error_info(hDevice, pdwErrorReg, &v, pszErrorTextBuffer);
    if (plErrorValue != NULL)
        *plErrorValue = (int32_t)v;
    return code;
}

uint32_t spcm_dwGetErrorInfo_i64(drv_handle hDevice, uint32_t *pdwErrorReg, int64_t *pllErrorValue, char pszErrorTextBuffer[AWGRT_ERRORTEXTLEN]) {
    return error_info(hDevice, pdwErrorReg, pllErrorValue, pszErrorTextBuffer);
}

uint32_t spcm_dwGetErrorInfo_d64(drv_handle hDevice, uint32_t *pdwErrorReg, double *pdErrorValue, char pszErrorTextBuffer[AWGRT_ERRORTEXTLEN]) {
    int64_t v = 0;
    uint32_t code = error_info(hDevice, pdwErrorReg, &v, pszErrorTextBuffer);
    if (pdErrorValue != NULL)
        *pdErrorValue = (double)v;
    return code;
}

uint32_t spcm_dwGetParam_i64(drv_handle hDevice, int32_t lRegister, int64_t *pllValue) {
    int64_t v = 0;
    uint32_t code;
    if (!registered || cb.get_i64 == NULL)
        return AWGRT_ERR_INIT;
    code = cb.get_i64(h2i(hDevice), lRegister, &v);
    if (pllValue != NULL)
        *pllValue = v;
    return code;
}

uint32_t spcm_dwGetParam_i32(drv_handle hDevice, int32_t lRegister, int32_t *plValue) {
    int64_t v = 0;
    uint32_t code = spcm_dwGetParam_i64(hDevice, lRegister, &v);
    if (plValue != NULL)
        *plValue = (int32_t)v;
    return code;
}

uint32_t spcm_dwGetParam_d64(drv_handle hDevice, int32_t lRegister, double *pdValue) {
    double v = 0.0;
    uint32_t code;
    if (!registered || cb.get_d64 == NULL)
        return AWGRT_ERR_INIT;
    code = cb.get_d64(h2i(hDevice), lRegister, &v);
    if (pdValue != NULL)
        *pdValue = v;
    return code;
}

uint32_t spcm_dwGetParam_ptr(drv_handle hDevice, int32_t lRegister, void *pvBuffer, uint64_t qwLen) {
    if (!registered || cb.get_ptr == NULL)
        return AWGRT_ERR_INIT;
    return cb.get_ptr(h2i(hDevice), lRegister, pvBuffer, pvBuffer == NULL ? 0 : qwLen);
}

uint32_t spcm_dwSetParam_i64(drv_handle hDevice, int32_t lRegister, int64_t llValue) {
    if (!registered || cb.set_i64 == NULL)
        return AWGRT_ERR_INIT;
    return cb.set_i64(h2i(hDevice), lRegister, llValue);
}

uint32_t spcm_dwSetParam_i32(drv_handle hDevice, int32_t lRegister, int32_t lValue) { return spcm_dwSetParam_i64(hDevice, lRegister, (int64_t)lValue); }

uint32_t spcm_dwSetParam_i64m(drv_handle hDevice, int32_t lRegister, int32_t lValueHigh, uint32_t dwValueLow) {
    uint64_t v = ((uint64_t)(uint32_t)lValueHigh << 32) | (uint64_t)dwValueLow;
    return spcm_dwSetParam_i64(hDevice, lRegister, (int64_t)v);
}

uint32_t spcm_dwSetParam_d64(drv_handle hDevice, int32_t lRegister, double dValue) {
    if (!registered || cb.set_d64 == NULL)
        return AWGRT_ERR_INIT;
    return cb.set_d64(h2i(hDevice), lRegister, dValue);
}

uint32_t spcm_dwSetParam_ptr(drv_handle hDevice, int32_t lRegister, void *pvBuffer, uint64_t qwLen) {
    if (!registered || cb.set_ptr == NULL)
        return AWGRT_ERR_INIT;
    return cb.set_ptr(h2i(hDevice), lRegister, pvBuffer, pvBuffer == NULL ? 0 : qwLen);
}

uint32_t spcm_dwDefTransfer_i64(drv_handle hDevice, uint32_t dwBufType, uint32_t dwDirection, uint32_t dwNotifySize, void *pvDataBuffer, uint64_t qwBrdOffs,
                                uint64_t qwTransferLen) {
    if (!registered || cb.def_transfer == NULL)
        return AWGRT_ERR_INIT;
    return cb.def_transfer(h2i(hDevice), dwBufType, dwDirection, dwNotifySize, pvDataBuffer, qwBrdOffs, qwTransferLen);
}

uint32_t spcm_dwInvalidateBuf(drv_handle hDevice, uint32_t dwBufType) {
    if (!registered || cb.invalidate == NULL)
        return AWGRT_ERR_INIT;
    return cb.invalidate(h2i(hDevice), dwBufType);
}

/* No continuous (pre-allocated) memory on an emulated card: NULL buffer, length 0. */
uint32_t spcm_dwGetContBuf_i64(drv_handle hDevice, uint32_t dwBufType, void **ppvDataBuffer, uint64_t *pqwContBufLen) {
    (void)hDevice;
    (void)dwBufType;
    if (ppvDataBuffer != NULL)
        *ppvDataBuffer = NULL;
    if (pqwContBufLen != NULL)
        *pqwContBufLen = 0;
    return registered ? AWGRT_ERR_OK : AWGRT_ERR_INIT;
}

/* No remote (LAN) instruments are emulated: discovery finds none and leaves the buffers as they are. */
uint32_t spcm_dwDiscovery(char **pszVisaString, uint32_t dwMaxNumRemoteCards, uint32_t dwMaxVisaStringLen, uint32_t dwTimeout_ms) {
    (void)pszVisaString;
    (void)dwMaxNumRemoteCards;
    (void)dwMaxVisaStringLen;
    (void)dwTimeout_ms;
    return AWGRT_ERR_OK;
}

uint32_t spcm_dwSendIDNRequest(char **pszIdnString, uint32_t dwMaxNumRemoteCards, uint32_t dwMaxIdnStringLen) {
    (void)pszIdnString;
    (void)dwMaxNumRemoteCards;
    (void)dwMaxIdnStringLen;
    return AWGRT_ERR_OK;
}
