package policy

// OutlierSuccessRate is outlier detection's success-rate mode. Every
// Interval, among the instances that took at least RequestVolume tries in
// it, and only when at least MinimumHosts did, an instance whose success
// rate is below mean - StdevFactorMilli/1000 x the standard deviation of
// those rates is ejected (within MaxEjectedPercent, for base ejection time
// x its ejections). A failure is a 5xx answer or a failed connection, as
// in the consecutive checks. With n instances one outlier lies at most
// sqrt(n-1) standard deviations below the mean, so a factor of 1.9 needs
// at least 5 qualifying instances to eject anything.
type OutlierSuccessRate struct {
	MinimumHosts     int
	RequestVolume    int
	StdevFactorMilli int // thousandths: 1900 is a factor of 1.9
}
