import { z } from "zod";
import type { SchemaTools } from "../../config/tools.js";

/** Options shared by the AWS provider types (aws-secrets-manager, aws-ssm, aws-sts). */
export const awsBase = (t: SchemaTools) => ({
  /** Default: AWS_REGION / the profile's region, as the AWS CLI does. */
  region: z.string().min(1).optional(),
  /** A non-default service endpoint (VPC endpoint, FIPS, a local test server). */
  endpoint: z.string().url().optional(),
  /** A role assumed through STS on top of the standard credential chain; its credentials are refreshed before they expire. */
  role_arn: z.string().startsWith("arn:", "must be an IAM role ARN").optional(),
  /** STS endpoint for role_arn (default: the regional STS endpoint). */
  sts_endpoint: z.string().url().optional(),
  /** A profile of the shared config/credentials files. */
  profile: z.string().optional(),
  /** A shared credentials file other than ~/.aws/credentials. */
  credentials_file: t.path().optional(),
  /** Backend calls in flight at once within one sync batch. */
  concurrency: z.number().int().min(1).max(64).default(4),
});
